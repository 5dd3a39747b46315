//! Networks of the NSL paper (work in progress).
