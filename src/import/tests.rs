//! Library-level tests of import and export.
