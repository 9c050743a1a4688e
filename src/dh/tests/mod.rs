//! Tests of the key manager with no Zenoh: a simulated network (`sim`), named
//! interleavings (`scenarios`) and randomized schedules (`schedules`).

mod scenarios;
mod schedules;
mod sim;
