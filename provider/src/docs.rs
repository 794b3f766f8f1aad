//! Docs generation (see below).
