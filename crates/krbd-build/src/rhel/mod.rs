//! RHEL-family kernels (CentOS, Rocky, Alma 7/8/9): the vault catalog, fetching the
//! source RPM and kernel-devel RPM, and turning them into the pipeline's inputs.

pub mod catalog;
pub mod prepare;
pub mod spec;
