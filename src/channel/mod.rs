//! Channel types: the built-in catalogue of types, default base URLs and known models.

pub mod catalog;
