//! The streaming client of `repro --endpoint`: one request against an OpenAI-compatible server
//! with a stall watchdog. It lives in [`crate::probe::endpoint`], below the diagnosis, because
//! `check --probe` sends its request with it too.

pub use crate::probe::endpoint::*;
