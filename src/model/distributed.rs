//! An MLX distributed rank and its peers: what a worker started by `mlx.launch` (or with
//! `MLX_RANK` and `MLX_HOSTFILE` set) is connected to, and the state of each peer process
//! that runs on this machine. A collective waits on every rank of its group, so a peer that
//! is stopped or gone stalls the worker however busy its CPU is (the ring backend busy-polls
//! its sockets).

use serde::{Deserialize, Serialize};

/// The worker's place in an MLX distributed group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distributed {
    /// `MLX_RANK`.
    pub rank: Option<u32>,
    /// `MLX_HOSTFILE`, the group's addresses.
    pub hostfile: Option<String>,
    /// The TCP connections of the worker to other ranks, one per peer end.
    pub peers: Vec<DistributedPeer>,
}

/// One connection of the worker to another rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributedPeer {
    /// `address:port` of the other end.
    pub address: String,
    /// TCP state of the worker's end (`close_wait`: the peer closed its end).
    pub state: String,
    /// The process at the other end, where it runs on this machine and can be seen.
    pub pid: Option<u32>,
    /// Its `MLX_RANK`.
    pub rank: Option<u32>,
    /// Its process state letter (`T`: stopped by a signal, `t`: held by a debugger).
    pub process_state: Option<char>,
}
