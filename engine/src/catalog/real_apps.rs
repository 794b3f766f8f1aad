//! Snapshot tests of the real apps' rendered container specs (their images
//! cannot be pulled on our machines, so the rendered specs are what we check).
