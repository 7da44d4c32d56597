//! Debian packages and the cache. (being written)
