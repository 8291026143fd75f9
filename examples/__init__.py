"""Example connectors for onceflow: import a module to register what it defines."""
