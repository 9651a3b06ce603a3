//! Lambda event shapes and the HTTP error contract.
