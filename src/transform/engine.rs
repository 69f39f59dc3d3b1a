//! Compiling and running one jq program over one JSON body, with only its input in sight.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, Compiler, Ctx, Vars};
use jaq_json::Val;

/// Longest program, in bytes.
pub const MAX_PROGRAM_BYTES: usize = 8192;
/// Stack of the thread that parses and compiles a program: jaq's parser recurses once per nesting
/// level, and 8 KiB of `[[[[…` must not overflow the stack of the thread that validates it.
const COMPILE_STACK: usize = 64 * 1024 * 1024;

/// Filters that would let a program see more than its input (environment, files, clock zone
/// files, logs) or stop the process: removed from the library, so a program naming one fails to
/// compile as an undefined function. `input`, `inputs`, `input_filename` and `$ENV` are not in
/// the jaq library crates at all, and no global variable is defined.
const FORBIDDEN: &[&str] = &[
    "env",
    "halt",
    "halt_error",
    "debug",
    "debug_empty",
    "stderr",
    "stderr_empty",
    "input",
    "inputs",
    "input_filename",
    "input_line_number",
    "get_search_list",
    "get_prog_origin",
    "get_jq_origin",
    "localtime",
    "strflocaltime",
    "mktime",
];

type Data = data::JustLut<Val>;

/// A compiled program.
pub struct Program {
    filter: jaq_core::Filter<Data>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Program")
    }
}

impl Program {
    /// Parses and compiles `code` on the calling thread (see [`check_program`] for a thread with
    /// room for deep nesting).
    pub fn compile(code: &str) -> Result<Self, String> {
        if code.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if code.len() > MAX_PROGRAM_BYTES {
            return Err(format!("must be at most {MAX_PROGRAM_BYTES} bytes"));
        }
        let allowed = |name: &str| !FORBIDDEN.contains(&name);
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|d| allowed(d.name));
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|f| allowed(f.0));
        // No module reader is configured: `import`/`include` cannot read files.
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| load_error(&errs))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let undefined: Vec<String> = errs
                    .iter()
                    .flat_map(|(_, es)| es.iter())
                    .map(|(name, what)| format!("{what:?} `{name}`").to_lowercase())
                    .collect();
                format!("undefined: {}", undefined.join(", "))
            })?;
        Ok(Self { filter })
    }

    /// Runs the program over `input` (JSON text); its single output as compact JSON.
    pub fn run(&self, input: &str) -> Result<String, String> {
        let input = jaq_json::read::parse_single(input.as_bytes())
            .map_err(|e| format!("input is not JSON: {e}"))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, input));
        let first = match out.next() {
            None => return Err("no output, expected 1".into()),
            Some(r) => r.map_err(exn_message)?,
        };
        // Counted up to a bound: a program may yield without end (the 1 s limit stops that).
        let mut extra = 0usize;
        for r in out.by_ref().take(1000) {
            r.map_err(exn_message)?;
            extra += 1;
        }
        if extra > 0 {
            let n = if extra == 1000 {
                "over 1000".to_string()
            } else {
                (extra + 1).to_string()
            };
            return Err(format!("{n} outputs, expected 1"));
        }
        let text = first.to_string();
        // jaq can yield values JSON has no text for (byte strings, NaN): refuse them, and send
        // compact JSON exactly as jaq wrote it (keys in the program's order).
        match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => Ok(raw.get().to_string()),
            Err(_) => Err("output is not JSON".into()),
        }
    }
}

/// Validates a program for the API: compiles it on a thread with a large stack and drops it.
pub fn check_program(code: &str) -> Result<(), String> {
    let code = code.to_string();
    std::thread::Builder::new()
        .name("transform-check".into())
        .stack_size(COMPILE_STACK)
        .spawn(move || Program::compile(&code).map(drop))
        .map_err(|e| format!("cannot be checked now: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("cannot be compiled".into()))
}

fn exn_message(e: jaq_core::Exn<Val>) -> String {
    match e.get_err() {
        Ok(err) => format!("error: {err}"),
        Err(_) => "error: halted".into(),
    }
}

fn load_error<P>(errs: &jaq_core::load::Errors<&str, P>) -> String {
    use jaq_core::load::Error;
    match errs.first().map(|(_, e)| e) {
        Some(Error::Io(_)) => "cannot import modules".into(),
        Some(Error::Lex(es)) => match es.first() {
            Some((expect, at)) => format!("does not parse: expected {}", describe(expect, at)),
            None => "does not parse".into(),
        },
        Some(Error::Parse(es)) => match es.first() {
            Some((expect, at)) => format!("does not parse: expected {}", describe(expect, at)),
            None => "does not parse".into(),
        },
        _ => "does not parse".into(),
    }
}

fn describe(expect: &impl std::fmt::Debug, at: &impl std::fmt::Debug) -> String {
    let at = format!("{at:?}");
    let at: String = at.chars().take(40).collect();
    format!("{expect:?} at {at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str, input: &str) -> Result<String, String> {
        Program::compile(code)?.run(input)
    }

    #[test]
    fn maps_fields_in_program_order() {
        let out = run(
            "{claim: .data.claimNumber, amount: .data.claimAmount, type: .event}",
            r#"{"event":"claim/opened","data":{"claimNumber":"CLM-001","claimAmount":10000}}"#,
        );
        assert_eq!(
            out.unwrap(),
            r#"{"claim":"CLM-001","amount":10000,"type":"claim/opened"}"#
        );
    }

    #[test]
    fn standard_library_works() {
        assert_eq!(
            run("[.[] | select(. > 1)] | map(. * 2) | add", "[1,2,3]").unwrap(),
            "10"
        );
        assert_eq!(
            run(r#".a | ascii_upcase | test("B")"#, r#"{"a":"b"}"#).unwrap(),
            "true"
        );
    }

    #[test]
    fn forbidden_and_undefined_names_do_not_compile() {
        for code in [
            "env",
            "$ENV",
            "$ENV.HOME",
            "input",
            "inputs",
            "input_filename",
            "halt",
            "halt_error",
            "halt_error(1)",
            "debug",
            "debug(.)",
            "stderr",
            "localtime",
            "nosuchfn",
            "$x",
            r#"import "a" as a; ."#,
            r#"include "a"; ."#,
        ] {
            assert!(Program::compile(code).is_err(), "{code} compiled");
        }
    }

    #[test]
    fn bad_programs_are_refused_with_a_reason() {
        assert!(Program::compile("").unwrap_err().contains("empty"));
        assert!(Program::compile(".a |").unwrap_err().contains("parse"));
        let long = format!(".{}", " ".repeat(MAX_PROGRAM_BYTES));
        assert!(Program::compile(&long).unwrap_err().contains("8192"));
        assert!(check_program(&"[".repeat(8000)).is_err());
    }

    #[test]
    fn output_count_and_errors_are_reported() {
        assert_eq!(run(".[]", "[1,2]").unwrap_err(), "2 outputs, expected 1");
        assert_eq!(run("empty", "1").unwrap_err(), "no output, expected 1");
        assert!(run(r#"error("boom")"#, "1").unwrap_err().contains("boom"));
        assert_eq!(
            run("range(5000)", "1").unwrap_err(),
            "over 1000 outputs, expected 1"
        );
    }
}
