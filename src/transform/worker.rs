//! The transform worker: this binary started as `beema-webhooks transform-worker` by
//! [`super::pool`]. It reads requests from stdin and answers on stdout, one at a time, under an
//! address-space limit of 256 MiB; the parent kills it when an answer takes over 1 s.
//!
//! Frames (integers big-endian): request `u32 len, program, u32 len, input`; answer
//! `u8 (0 ok, 1 error), u32 len, text`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use super::engine::Program;

/// Address space a worker may map: a program that allocates past it dies, not the dispatcher.
pub const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;
/// Stack of the thread that runs programs: deep but bounded recursion works, runaway recursion
/// ends in a crash of this process, which the parent reports as the program's failure.
const STACK: usize = 32 * 1024 * 1024;
/// Compiled programs kept (one per webhook version seen by this worker).
const CACHE: usize = 256;

/// Entry point of the subcommand.
pub fn main() -> ExitCode {
    if let Err(e) = limit_memory(MEMORY_LIMIT) {
        eprintln!("transform worker: cannot limit memory: {e}");
        return ExitCode::FAILURE;
    }
    let serve = std::thread::Builder::new()
        .name("transform".into())
        .stack_size(STACK)
        .spawn(|| serve(&mut io::stdin().lock(), &mut io::stdout().lock()));
    match serve.map(|t| t.join()) {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) => {
            eprintln!("transform worker: {e}");
            ExitCode::FAILURE
        }
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("transform worker: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn limit_memory(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct passed by reference and changes only this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Answers requests until stdin closes (the parent dropped this worker).
fn serve(input: &mut impl Read, output: &mut impl Write) -> io::Result<()> {
    let mut programs: HashMap<String, Result<Program, String>> = HashMap::new();
    loop {
        let program = match read_frame(input) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let body = read_frame(input)?;
        let program = String::from_utf8(program).map_err(io::Error::other)?;
        let body = String::from_utf8(body).map_err(io::Error::other)?;
        if programs.len() >= CACHE && !programs.contains_key(&program) {
            programs.clear();
        }
        let compiled = programs
            .entry(program)
            .or_insert_with_key(|code| Program::compile(code));
        let answer = match compiled {
            Ok(p) => p.run(&body),
            Err(e) => Err(e.clone()),
        };
        write_answer(output, &answer)?;
    }
}

/// Reads a length-prefixed frame.
pub(super) fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_answer(w: &mut impl Write, answer: &Result<String, String>) -> io::Result<()> {
    let (tag, text) = match answer {
        Ok(t) => (0u8, t),
        Err(e) => (1u8, e),
    };
    w.write_all(&[tag])?;
    w.write_all(&(text.len() as u32).to_be_bytes())?;
    w.write_all(text.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn answers_each_request_in_turn() {
        let mut req = Vec::new();
        for (p, i) in [(".a", r#"{"a":1}"#), (".[]", "[1,2]"), ("nosuch", "1")] {
            req.extend(frame(p));
            req.extend(frame(i));
        }
        let mut out = Vec::new();
        serve(&mut req.as_slice(), &mut out).unwrap();
        let mut r = out.as_slice();
        let mut answers = Vec::new();
        while !r.is_empty() {
            let mut tag = [0u8];
            r.read_exact(&mut tag).unwrap();
            let text = String::from_utf8(read_frame(&mut r).unwrap()).unwrap();
            answers.push((tag[0], text));
        }
        assert_eq!(answers[0], (0, "1".to_string()));
        assert_eq!(answers[1], (1, "2 outputs, expected 1".to_string()));
        assert_eq!(answers[2].0, 1);
        assert_eq!(answers.len(), 3);
    }
}
