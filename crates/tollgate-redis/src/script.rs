//! The Lua scripts: their sources, the algorithms' parameters in the scripts' units, the
//! calls that invoke them and their replies, each parsed once into a typed struct.

pub(crate) mod calls;
pub(crate) mod params;
pub(crate) mod reply;
pub mod source;
