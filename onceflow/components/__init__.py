"""Built-in components, written against the same public protocols a user implements."""

from onceflow.components.globalcommitter import (GlobalCommitter, GlobalCommitterOperator,
                                                 PassThroughCommitter, StoreGlobalCommitter)
from onceflow.components.sinkv2 import (EOI, CommittableSummary, CommittableWithLineage,
                                        CommitterOperator, SinkV2, SinkWriterOperator)

__all__ = ["EOI", "CommittableSummary", "CommittableWithLineage", "CommitterOperator",
           "GlobalCommitter", "GlobalCommitterOperator", "PassThroughCommitter", "SinkV2",
           "SinkWriterOperator", "StoreGlobalCommitter"]
