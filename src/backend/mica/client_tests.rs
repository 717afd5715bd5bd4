//! The client against the real simulator (run in-process on its own thread).
