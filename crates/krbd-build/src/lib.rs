//! The build pipeline. (being written)
