//! Test support for Outpost's integration tests.
