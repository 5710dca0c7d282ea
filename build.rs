//! Compiles `proto/amends/v1/*.proto` with protox (pure Rust), so no protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/amends/v1/touchpoint.proto",
        "proto/amends/v1/outcome.proto",
        "proto/amends/v1/task.proto",
        "proto/amends/v1/trend.proto",
        "proto/amends/v1/state.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
