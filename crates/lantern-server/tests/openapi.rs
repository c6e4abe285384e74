//! `openapi.yaml` is generated from the code; this fails when it is stale.

#[test]
fn openapi_yaml_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = lantern_server::openapi::yaml();
    assert!(
        committed == generated,
        "openapi.yaml is out of date with the code: run `make openapi` and commit the result"
    );
}
