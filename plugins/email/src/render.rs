//! Renders the built-in templates with minijinja. Each template has three
//! parts, `NAME.subject`, `NAME.txt` and `NAME.html`; the HTML parts extend a
//! shared layout. Templates are compiled into the plugin, so a plugin
//! version always renders the same text.
//!
//! Undefined variables are errors (strict mode): a template missing its data
//! fails the job with the variable's name rather than sending a blank.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// The template names producers may use.
pub const TEMPLATES: &[&str] = &[
    "booking_confirmation",
    "verify_email",
    "password_reset",
    "vendor_interest",
    "response_reminder",
    "alternative_vendors",
];

macro_rules! parts {
    ($($name:literal),*) => {
        &[$(
            (concat!($name, ".subject"), include_str!(concat!("../templates/", $name, ".subject"))),
            (concat!($name, ".txt"), include_str!(concat!("../templates/", $name, ".txt"))),
            (concat!($name, ".html"), include_str!(concat!("../templates/", $name, ".html"))),
        )*]
    };
}

const SOURCES: &[(&str, &str)] = parts!(
    "booking_confirmation",
    "verify_email",
    "password_reset",
    "vendor_interest",
    "response_reminder",
    "alternative_vendors"
);

#[derive(Debug)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.add_template("layout.html", include_str!("../templates/layout.html")).expect("layout.html is valid");
    for (name, source) in SOURCES {
        env.add_template(name, source).unwrap_or_else(|e| panic!("template {name} is invalid: {e}"));
    }
    env
}

/// Renders template `name` with `data`; `brand` is available as `brand`.
pub fn render(name: &str, data: &serde_json::Value, brand: Option<&str>) -> Result<Rendered, String> {
    if !TEMPLATES.contains(&name) {
        return Err(format!("unknown template `{name}`; known templates: {}", TEMPLATES.join(", ")));
    }
    if !data.is_object() && !data.is_null() {
        return Err("`data` must be a JSON object".into());
    }
    let env = environment();
    let ctx = minijinja::context! {
        brand => brand.unwrap_or("Our team"),
        ..minijinja::Value::from_serialize(data)
    };
    // minijinja's strict mode would say "undefined value" and where, but
    // not which variable, and only the first: every variable any part of
    // the template reads is checked first, and all that are missing named.
    let missing = missing_variables(&env, name, data);
    if !missing.is_empty() {
        return Err(format!("template `{name}` needs `data.{}`, which the payload lacks", missing.join("`, `data.")));
    }
    let part = |suffix: &str| -> Result<String, String> {
        let full = format!("{name}.{suffix}");
        env.get_template(&full).and_then(|t| t.render(&ctx)).map_err(|e| format!("template `{name}` ({suffix}): {e}"))
    };
    Ok(Rendered { subject: part("subject")?.trim().to_string(), text: part("txt")?, html: part("html")? })
}

/// The variables template `name`'s parts (and the layout they extend) read
/// that `data` does not hold, as dotted paths (`customer.name`), sorted,
/// outermost first; `brand` is always there.
fn missing_variables(env: &Environment<'_>, name: &str, data: &serde_json::Value) -> Vec<String> {
    let mut paths = std::collections::BTreeSet::new();
    let parts = ["subject", "txt", "html"].map(|suffix| format!("{name}.{suffix}"));
    for template in parts.iter().map(String::as_str).chain(["layout.html"]) {
        if let Ok(t) = env.get_template(template) {
            paths.extend(t.undeclared_variables(true));
        }
    }
    let resolves = |path: &str| {
        path == "brand" || path.split('.').try_fold(data, |value, key| value.get(key)).is_some_and(|v| !v.is_null())
    };
    let mut missing: Vec<String> = Vec::new();
    for path in paths {
        // `customer` missing says all that `customer.name` would.
        let under_missing = missing.iter().any(|m| path.strip_prefix(m.as_str()).is_some_and(|r| r.starts_with('.')));
        if !resolves(&path) && !under_missing {
            missing.push(path);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(name: &str) -> serde_json::Value {
        match name {
            "booking_confirmation" => json!({"customer_name": "Ana", "booking_id": "B-17",
                "service_name": "Wedding photos", "vendor_name": "Lumen Studio", "date": "2026-12-05"}),
            "verify_email" => json!({"name": "Ana", "verify_url": "https://x.test/v"}),
            "password_reset" => json!({"name": "Ana", "reset_url": "https://x.test/r", "expires_in_minutes": 30}),
            "vendor_interest" => {
                json!({"vendor_name": "Lumen", "kind": "cart_add", "client_id": "c1", "service_id": "s1"})
            }
            "response_reminder" => {
                json!({"vendor_name": "Lumen", "conversation_id": "k1", "step": 2, "hours_waiting": 24})
            }
            "alternative_vendors" => {
                json!({"client_name": "Ana", "vendor_name": "Lumen", "browse_url": "https://x.test/b"})
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_template_renders_with_its_sample_data() {
        for name in TEMPLATES {
            let r = render(name, &sample(name), Some("Acme")).unwrap();
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{name}: {}", r.subject);
            assert!(r.text.len() > 20, "{name}");
            assert!(r.html.contains("<html") && r.html.contains("Acme"), "{name}");
        }
    }

    #[test]
    fn missing_data_names_the_variable() {
        let err = render("verify_email", &json!({"name": "Ana"}), None).unwrap_err();
        assert_eq!(err, "template `verify_email` needs `data.verify_url`, which the payload lacks");
        // As the README's example: a booking confirmation without its date.
        let mut data = sample("booking_confirmation");
        data.as_object_mut().unwrap().remove("date");
        data.as_object_mut().unwrap().remove("vendor_name");
        let err = render("booking_confirmation", &data, None).unwrap_err();
        assert!(err.contains("needs `data.date`, `data.vendor_name`, which the payload lacks"), "{err}");
    }

    #[test]
    fn unknown_template_lists_the_known_ones() {
        let err = render("welcome", &json!({}), None).unwrap_err();
        assert!(err.contains("unknown template `welcome`") && err.contains("password_reset"), "{err}");
    }
}
