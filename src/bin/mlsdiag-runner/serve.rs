//! `mlsdiag-runner serve`: the request loop. Loads the checkpoint once, answers each request
//! line with a `token` event per generated token and a `done` (or `error`) event, and flushes
//! every line, because the parent's watchdog reads them as the sign of progress.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use mlsdiag::repro::checkpoint::Checkpoint;
use mlsdiag::repro::protocol::{Event, RunRequest};

use crate::prompt::Prompter;
use crate::qwen2::{Finish, Qwen2, Sampling, generate};

pub fn serve(dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let checkpoint = Checkpoint::open(dir)?;
    let prompter = Prompter::open(&checkpoint)?;
    let model = Qwen2::load(&checkpoint)?;
    let mut out = std::io::stdout().lock();
    emit(
        &mut out,
        &Event::Ready {
            pid: std::process::id(),
            architecture: checkpoint.config.model_type.clone(),
            load_secs: started.elapsed().as_secs_f64(),
        },
    )?;
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let request: RunRequest = serde_json::from_str(&line)
            .with_context(|| format!("request line {}: {line:?}", n + 1))?;
        let event = match run(&model, &prompter, &request, &mut out) {
            Ok(done) => done,
            Err(e) => Event::Error {
                run: request.run,
                message: format!("{e:#}"),
            },
        };
        emit(&mut out, &event)?;
    }
    Ok(())
}

fn emit(out: &mut impl Write, event: &Event) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")?;
    out.flush().context("writing to the parent")
}

fn run(
    model: &Qwen2,
    prompter: &Prompter,
    request: &RunRequest,
    out: &mut impl Write,
) -> anyhow::Result<Event> {
    let started = Instant::now();
    let text = match (&request.messages, &request.prompt) {
        (Some(messages), _) => prompter.render(messages)?,
        (None, Some(prompt)) => prompt.clone(),
        (None, None) => anyhow::bail!("the request has neither messages nor prompt"),
    };
    let ids = prompter.encode(&text)?;
    let sampling = Sampling {
        temperature: request.temperature,
        top_p: request.top_p,
        seed: request.seed,
        max_tokens: request.max_tokens,
    };
    let mut write_error = None;
    let mut count = 0u64;
    let (tokens, finish) = generate(
        model,
        &ids,
        |t| prompter.is_eos(t),
        &sampling,
        |id| {
            if let Err(e) = emit(out, &Event::Token { id }) {
                write_error = Some(e);
                return ControlFlow::Break(());
            }
            count += 1;
            if request.hang_after == Some(count) {
                block_forever();
            }
            ControlFlow::Continue(())
        },
    )?;
    if let Some(e) = write_error {
        return Err(e);
    }
    Ok(Event::Done {
        run: request.run,
        prompt_tokens: ids.len(),
        tokens: tokens.len() as u64,
        finish: match finish {
            Finish::Eos => "eos",
            Finish::MaxTokens => "max_tokens",
            Finish::Stopped => "stopped",
        }
        .into(),
        secs: started.elapsed().as_secs_f64(),
        text: prompter.decode(&tokens)?,
    })
}

/// The fault injection of `repro --inject-hang`: park this thread in a futex wait that nothing
/// will ever wake, mid-generation, the way the incident's worker sat (state S, 0% CPU, pipes
/// open). Only ending the process ends it.
fn block_forever() -> ! {
    let lock = std::sync::Mutex::new(());
    let never = std::sync::Condvar::new();
    let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        guard = never.wait(guard).unwrap_or_else(|p| p.into_inner());
    }
}
