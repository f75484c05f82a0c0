pub mod tabular;
