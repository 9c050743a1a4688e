"""Helpers shared by the test modules: communicators on loopback (`comm`), subprocesses,
routers and ports (`procs`), network namespaces (`netns`) and the demo's results
(`demo`). Test modules import from here, never from each other."""
