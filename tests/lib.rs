//! Shared helpers for the integration tests (the tests live beside this file).
