//! Start-up of a Lambda binary (every function's main wires `App::from_env` the same way).

use std::process::Command;

#[test]
fn a_missing_table_name_stops_start_up_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_create-domain"))
        .env_remove("TABLE_NAME")
        // Never reached: configuration is read before the runtime is contacted.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .expect("run create-domain");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TABLE_NAME is not set"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
