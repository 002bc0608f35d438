//! The `DataPlatform` API (`plinth.dev/v1alpha1`): the spec a platform engineer writes and the
//! status the operator reports.
