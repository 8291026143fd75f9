"""Run a scenario on real Apache Flink and compare it with onceflow's model.

Needs the optional extra (`pip install 'onceflow[flink]'`, which brings the
`apache-flink` wheel and its jars) and Java 17+.  Nothing in onceflow's core
imports this package.
"""
