//! The ServiceTitan API engine (in progress).
