//! Converts `openapi.yaml` to the JSON served at `GET /swagger/doc.json` (Swagger UI's
//! spec URL), once, at build time: the binary embeds both and carries no YAML parser,
//! and a description that is not valid YAML fails the build, not a request.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let yaml_path = manifest_dir.join("openapi.yaml");
    println!("cargo:rerun-if-changed={}", yaml_path.display());

    let yaml = std::fs::read_to_string(&yaml_path)?;
    let description: serde_json::Value = serde_norway::from_str(&yaml)
        .map_err(|err| format!("{} is not valid YAML: {err}", yaml_path.display()))?;
    let json = serde_json::to_string_pretty(&description)?;
    std::fs::write(
        PathBuf::from(env::var("OUT_DIR")?).join("openapi.json"),
        json,
    )?;
    Ok(())
}
