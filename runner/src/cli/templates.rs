//! The plugin templates `runner plugin new` writes, one per language.
//!
//! - the files of `examples/plugin-template` (Rust),
//!   `examples/plugin-template-ts` and `examples/plugin-template-python`,
//!   compiled into the binary so `plugin new` works from an installed
//!   runner with no checkout beside it;
//! - the rewrites that make a template a plugin of its own: its name, and a
//!   `wit/` folder of its own in place of the repository's shared one (for
//!   Python, with the WASI packages its world names in `wit/deps/`).

use clap::ValueEnum;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    #[value(alias = "typescript", alias = "js", alias = "javascript")]
    Ts,
    #[value(alias = "py")]
    Python,
}

macro_rules! example {
    ($path:literal) => {
        include_str!(concat!("../../../examples/", $path))
    };
}

macro_rules! wit {
    ($path:literal) => {
        include_str!(concat!("../../../wit/", $path))
    };
}

/// The contract, as every template's `wit/` (or `wit/deps/`) carries it.
const CONTRACT: &[(&str, &str)] = &[("world.wit", wit!("v0.2/world.wit")), ("types.wit", wit!("v0.2/types.wit"))];

/// The WASI packages a Python plugin's world names (see `wit/wasi/README.md`).
const WASI: &[(&str, &str)] = &[
    ("cli.wit", wit!("wasi/cli.wit")),
    ("clocks.wit", wit!("wasi/clocks.wit")),
    ("filesystem.wit", wit!("wasi/filesystem.wit")),
    ("http.wit", wit!("wasi/http.wit")),
    ("io.wit", wit!("wasi/io.wit")),
    ("random.wit", wit!("wasi/random.wit")),
    ("sockets.wit", wit!("wasi/sockets.wit")),
];

/// A template's files: (path in the new plugin, text, the template's own name).
struct Template {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const RUST: Template = Template {
    name: "plugin-template",
    files: &[
        ("Cargo.toml", example!("plugin-template/Cargo.toml")),
        ("src/lib.rs", example!("plugin-template/src/lib.rs")),
        ("README.md", example!("plugin-template/README.md")),
    ],
};

const TS: Template = Template {
    name: "plugin-template-ts",
    files: &[
        ("package.json", example!("plugin-template-ts/package.json")),
        ("tsconfig.json", example!("plugin-template-ts/tsconfig.json")),
        ("build.mjs", example!("plugin-template-ts/build.mjs")),
        ("src/index.ts", example!("plugin-template-ts/src/index.ts")),
        ("src/failure.ts", example!("plugin-template-ts/src/failure.ts")),
        ("README.md", example!("plugin-template-ts/README.md")),
        (".gitignore", example!("plugin-template-ts/.gitignore")),
    ],
};

const PYTHON: Template = Template {
    name: "plugin-template-python",
    files: &[
        ("pyproject.toml", example!("plugin-template-python/pyproject.toml")),
        ("requirements.txt", example!("plugin-template-python/requirements.txt")),
        ("build.py", example!("plugin-template-python/build.py")),
        ("src/app.py", example!("plugin-template-python/src/app.py")),
        ("src/jobrunner_http.py", example!("plugin-template-python/src/jobrunner_http.py")),
        ("wit/world.wit", example!("plugin-template-python/wit/world.wit")),
        ("README.md", example!("plugin-template-python/README.md")),
        (".gitignore", example!("plugin-template-python/.gitignore")),
    ],
};

/// The files of a new plugin called `name`, written in `lang`.
pub fn files(lang: Lang, name: &str) -> Vec<(PathBuf, String)> {
    let template = match lang {
        Lang::Rust => &RUST,
        Lang::Ts => &TS,
        Lang::Python => &PYTHON,
    };
    let mut files: Vec<(PathBuf, String)> = template
        .files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), own(lang, path, &text.replace(template.name, name))))
        .collect();
    let contract_dir = match lang {
        Lang::Rust | Lang::Ts => "wit",
        Lang::Python => "wit/deps/jobrunner-plugin",
    };
    files.extend(CONTRACT.iter().map(|(f, text)| (PathBuf::from(contract_dir).join(f), text.to_string())));
    if lang == Lang::Python {
        files.extend(WASI.iter().map(|(f, text)| (PathBuf::from("wit/deps").join(f), text.to_string())));
    }
    if lang == Lang::Rust {
        files.push((PathBuf::from(".gitignore"), "target/\n".to_string()));
    }
    files
}

/// Rewrites a template file that points into the repository so that it
/// points at the new plugin's own copy instead.
fn own(lang: Lang, path: &str, text: &str) -> String {
    match (lang, path) {
        // The template is a member of the runner's workspace; a new plugin
        // is a workspace of its own.
        (Lang::Rust, "Cargo.toml") => format!("{text}\n[workspace]\n"),
        (Lang::Rust, "src/lib.rs") => text.replace("../../wit/v0.2", "wit"),
        (Lang::Ts, "package.json") => text.replace("../../wit/v0.2", "wit"),
        // Without `contract-wit`, build.py takes `wit/` as it is, deps and all.
        (Lang::Python, "pyproject.toml") => text
            .lines()
            .filter(|l| !l.starts_with("contract-wit") && !l.starts_with("wasi-wit"))
            .map(|l| format!("{l}\n"))
            .collect(),
        _ => text.to_string(),
    }
}

/// What to run next, printed after the files are written.
pub fn next_steps(lang: Lang, name: &str, dir: &std::path::Path) -> Vec<String> {
    let (build, file) = match lang {
        Lang::Rust => (
            "cargo build --target wasm32-wasip2 --release".to_string(),
            format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
        ),
        Lang::Ts => ("npm install && npm run build".to_string(), format!("dist/{name}.wasm")),
        Lang::Python => ("pip install -r requirements.txt && python build.py".to_string(), format!("dist/{name}.wasm")),
    };
    vec![
        format!("build it:  cd {} && {build}", dir.display()),
        format!("check it:  runner plugin check {file}"),
        format!("run it:    runner exec {file} --type {name} --payload '{{\"name\": \"Ada\"}}'"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_names_the_plugin_and_carries_its_contract() {
        for lang in [Lang::Rust, Lang::Ts, Lang::Python] {
            let files = files(lang, "greeter");
            let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
            assert!(!all.contains("plugin-template"), "{lang:?} still names the template");
            assert!(!all.contains("../../wit"), "{lang:?} points into the repository");
            assert!(files.iter().any(|(p, _)| p.ends_with("types.wit")), "{lang:?} has the contract");
        }
        let py = files(Lang::Python, "greeter");
        let pyproject = &py.iter().find(|(p, _)| p.ends_with("pyproject.toml")).unwrap().1;
        assert!(!pyproject.contains("contract-wit"), "{pyproject}");
        assert!(py.iter().any(|(p, _)| p == &PathBuf::from("wit/deps/http.wit")));
    }
}
