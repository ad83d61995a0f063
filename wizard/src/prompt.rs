//! The questions, behind a small trait: dialoguer on a real terminal, and a scripted
//! prompter in the tests (dialoguer refuses to run without a terminal).

use std::io;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

/// Asks one question at a time. Every method blocks until answered.
pub trait Prompter {
    /// Picks one of `items`; returns its index.
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> io::Result<usize>;
    /// A line of text, offering `default` for Enter; asks again while `check` refuses it.
    fn input(
        &mut self,
        prompt: &str,
        default: Option<&str>,
        check: &dyn Fn(&str) -> Result<(), String>,
    ) -> io::Result<String>;
    /// A secret, not echoed. Empty only when `allow_empty`.
    fn password(&mut self, prompt: &str, allow_empty: bool) -> io::Result<String>;
    fn confirm(&mut self, prompt: &str, default: bool) -> io::Result<bool>;
    /// Tells the user something (a heading, a check's result).
    fn say(&mut self, text: &str);
}

/// The real terminal, through dialoguer (prompts on stderr, like dialoguer's default).
pub struct Terminal {
    theme: ColorfulTheme,
}

impl Terminal {
    pub fn new() -> Terminal {
        Terminal { theme: ColorfulTheme::default() }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

impl Prompter for Terminal {
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> io::Result<usize> {
        Ok(Select::with_theme(&self.theme).with_prompt(prompt).items(items).default(default).interact()?)
    }

    fn input(
        &mut self,
        prompt: &str,
        default: Option<&str>,
        check: &dyn Fn(&str) -> Result<(), String>,
    ) -> io::Result<String> {
        let mut input =
            Input::<String>::with_theme(&self.theme).with_prompt(prompt).validate_with(|s: &String| check(s));
        if let Some(d) = default {
            input = input.default(d.to_string());
        }
        Ok(input.interact_text()?.trim().to_string())
    }

    fn password(&mut self, prompt: &str, allow_empty: bool) -> io::Result<String> {
        let value =
            Password::with_theme(&self.theme).with_prompt(prompt).allow_empty_password(allow_empty).interact()?;
        Ok(value.trim().to_string())
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> io::Result<bool> {
        Ok(Confirm::with_theme(&self.theme).with_prompt(prompt).default(default).interact()?)
    }

    fn say(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

#[cfg(test)]
pub(crate) mod scripted {
    use std::collections::VecDeque;
    use std::io;

    use super::Prompter;

    /// One scripted answer.
    #[derive(Debug, Clone)]
    pub enum Reply {
        /// Select the first item containing this text.
        Pick(&'static str),
        /// Type this (input or password).
        Text(&'static str),
        /// Press Enter: the default.
        Enter,
        Yes,
        No,
    }

    /// Answers from a script and records the conversation, so tests can check what was
    /// asked and said. Runs out of answers → the terminal "closed".
    pub struct Scripted {
        replies: VecDeque<Reply>,
        pub log: Vec<String>,
    }

    impl Scripted {
        pub fn new(replies: &[Reply]) -> Scripted {
            Scripted { replies: replies.iter().cloned().collect(), log: Vec::new() }
        }

        pub fn transcript(&self) -> String {
            self.log.join("\n")
        }

        fn next(&mut self, prompt: &str) -> io::Result<Reply> {
            self.log.push(format!("? {prompt}"));
            self.replies.pop_front().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("script ended at {prompt:?}:\n{}", self.transcript()),
                )
            })
        }

        fn wrong(&self, reply: Reply, prompt: &str) -> io::Error {
            io::Error::other(format!("{reply:?} does not answer {prompt:?}:\n{}", self.transcript()))
        }
    }

    impl Prompter for Scripted {
        fn select(&mut self, prompt: &str, items: &[String], default: usize) -> io::Result<usize> {
            match self.next(prompt)? {
                Reply::Enter => Ok(default),
                Reply::Pick(text) => items.iter().position(|i| i.contains(text)).ok_or_else(|| {
                    io::Error::other(format!("no item {text:?} in {items:?} for {prompt:?}:\n{}", self.transcript()))
                }),
                other => Err(self.wrong(other, prompt)),
            }
        }

        fn input(
            &mut self,
            prompt: &str,
            default: Option<&str>,
            check: &dyn Fn(&str) -> Result<(), String>,
        ) -> io::Result<String> {
            loop {
                let value = match self.next(prompt)? {
                    Reply::Text(t) => t.to_string(),
                    Reply::Enter if default.is_some() => default.unwrap_or_default().to_string(),
                    other => return Err(self.wrong(other, prompt)),
                };
                match check(&value) {
                    Ok(()) => return Ok(value),
                    Err(e) => self.log.push(format!("! {e}")),
                }
            }
        }

        fn password(&mut self, prompt: &str, allow_empty: bool) -> io::Result<String> {
            match self.next(prompt)? {
                Reply::Text(t) => Ok(t.to_string()),
                Reply::Enter if allow_empty => Ok(String::new()),
                other => Err(self.wrong(other, prompt)),
            }
        }

        fn confirm(&mut self, prompt: &str, default: bool) -> io::Result<bool> {
            match self.next(prompt)? {
                Reply::Yes => Ok(true),
                Reply::No => Ok(false),
                Reply::Enter => Ok(default),
                other => Err(self.wrong(other, prompt)),
            }
        }

        fn say(&mut self, text: &str) {
            self.log.push(text.to_string());
        }
    }
}
