//! Test plugin built against a (pretend) future interface generation: ABI 2.0.0.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::RString;
use abi_stable::{declare_root_module_statics, export_root_module, prefix_type::PrefixTypeTrait, StableAbi};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = FutureModRef)))]
#[sabi(missing_field(panic))]
pub struct FutureMod {
    #[sabi(last_prefix_field)]
    pub name: extern "C" fn() -> RString,
}

impl RootModule for FutureModRef {
    declare_root_module_statics! {FutureModRef}
    const BASE_NAME: &'static str = "durable_streams_plugin";
    const NAME: &'static str = "durable_streams_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("2.0.0");
}

extern "C" fn name() -> RString {
    "future".into()
}

#[export_root_module]
pub fn root() -> FutureModRef {
    FutureMod { name }.leak_into_prefix()
}
