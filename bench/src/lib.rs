//! The benchmarks live in `benches/`; see `docs/performance.md` for how to
//! run them and what they measured on the reference machine.
