//! Checks of what ships beside the code, one binary: the SAM template against the
//! workspace, and the docs (sizes, links).

mod docs;
mod template;
