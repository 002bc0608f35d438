//! The Plinth operator: the reconcile engine, its AWS components, the controller and the CLI.
