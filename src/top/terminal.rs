//! The live view: the alternate screen, redrawn every interval until q, Esc
//! or Ctrl-C.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, queue, terminal, ExecutableCommand};

use super::fetch::fetch;
use super::rates::Previous;
use super::render::{cut, render};
use super::TopOpts;
use crate::client::http::ApiClient;

/// The size assumed when the terminal reports none: a pseudo-terminal may
/// report 0x0 when nobody set its size.
const FALLBACK_SIZE: (u16, u16) = (100, 40);

/// Restores the terminal however the live view ends.
struct TermGuard;

impl TermGuard {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("raw mode")?;
        let mut out = std::io::stdout();
        out.execute(terminal::EnterAlternateScreen)?;
        out.execute(cursor::Hide)?;
        Ok(TermGuard)
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        let _ = out.execute(cursor::Show);
        let _ = out.execute(terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// Columns of text sent to a pipe or a file, where nothing cuts long lines.
const PIPE_WIDTH: usize = 200;

/// A terminal's own width; long lines for a pipe or a file.
pub(super) fn text_width() -> usize {
    if !std::io::stdout().is_terminal() {
        return PIPE_WIDTH;
    }
    terminal::size()
        .ok()
        .filter(|(c, _)| *c > 0)
        .map_or(FALLBACK_SIZE.0 as usize, |(c, _)| c as usize)
}

/// The terminal's (columns, rows).
fn size() -> (u16, u16) {
    match terminal::size() {
        Ok((c, r)) if c > 0 && r > 0 => (c, r),
        _ => FALLBACK_SIZE,
    }
}

pub(super) fn live(client: &ApiClient, opts: &TopOpts) -> Result<()> {
    let _guard = TermGuard::enter()?;
    let mut prev = Previous::default();
    let interval = Duration::from_millis(opts.interval_ms);
    loop {
        let (cols, rows) = size();
        let lines = match fetch(client, opts.rows, &mut prev) {
            Ok(s) => render(&s, cols as usize),
            Err(e) => unreachable_lines(client, &e, cols as usize),
        };
        draw(&lines, rows)?;
        if quit_within(interval)? {
            return Ok(());
        }
    }
}

fn unreachable_lines(client: &ApiClient, e: &anyhow::Error, width: usize) -> Vec<String> {
    vec![
        format!("scx_pilot top  {}", client.base_url()),
        String::new(),
        cut(&format!("cannot reach the agent: {e:#}"), width),
        "retrying; q to quit".into(),
    ]
}

/// The lines that fit above the bottom row, which holds the key help and
/// how many lines did not fit.
fn draw(lines: &[String], rows: u16) -> Result<()> {
    let mut out = std::io::stdout().lock();
    queue!(
        out,
        cursor::MoveTo(0, 0),
        terminal::Clear(terminal::ClearType::All)
    )?;
    let help_row = rows.saturating_sub(1);
    for (i, l) in lines.iter().take(help_row as usize).enumerate() {
        queue!(out, cursor::MoveTo(0, i as u16))?;
        out.write_all(l.as_bytes())?;
    }
    queue!(out, cursor::MoveTo(0, help_row))?;
    let hidden = lines.len().saturating_sub(help_row as usize);
    if hidden > 0 {
        write!(
            out,
            "q: quit   +{hidden} more lines (a taller terminal shows them)"
        )?;
    } else {
        out.write_all(b"q: quit")?;
    }
    out.flush()?;
    Ok(())
}

/// Wait up to `interval` for a key: true when it asks to quit. A resize ends
/// the wait early, to redraw at the new size.
fn quit_within(interval: Duration) -> Result<bool> {
    let deadline = Instant::now() + interval;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if !event::poll(left)? {
            break;
        }
        match event::read()? {
            Event::Key(k) if k.kind != KeyEventKind::Release => {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                    return Ok(true);
                }
            }
            Event::Resize(..) => break,
            _ => {}
        }
    }
    Ok(false)
}
