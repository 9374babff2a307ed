//! Stand-in backend for operating systems without an implementation yet (macOS arrives with its
//! own libproc/mach2 module). Every call fails with a clear "unsupported" error so the rest of
//! the crate still builds and the failure is explicit at run time.

use super::Platform;
use crate::error::InspectError;
use crate::model::{FdInfo, ProcessInfo, SystemMemory, ThreadInfo};

pub struct Unsupported;

fn unsupported() -> InspectError {
    InspectError::Unsupported(format!(
        "process inspection is not implemented on {} yet",
        std::env::consts::OS
    ))
}

impl Platform for Unsupported {
    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        Err(unsupported().into())
    }
    fn cmdline(&self, _pid: u32) -> Result<Vec<String>, InspectError> {
        Err(unsupported())
    }
    fn process(&self, _pid: u32) -> Result<ProcessInfo, InspectError> {
        Err(unsupported())
    }
    fn threads(&self, _pid: u32) -> Result<Vec<ThreadInfo>, InspectError> {
        Err(unsupported())
    }
    fn fds(&self, _pid: u32, _peers: Option<&[u32]>) -> Result<Vec<FdInfo>, InspectError> {
        Err(unsupported())
    }
    fn system_memory(&self) -> anyhow::Result<SystemMemory> {
        Err(unsupported().into())
    }
}
