//! The command of a one-off (`slipway run`, `workspace run`), typed so that nothing re-parses
//! what the user already split: one argument is a bash command line, as Heroku's `run` takes
//! it; several arguments are an argv, run exactly as given.

/// A one-off command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOff {
    /// A bash command line: `slipway run APP -- 'rake db:migrate && echo done'`.
    Shell(String),
    /// Words run as they are, never re-split or expanded: `slipway run APP -- echo 'x;id'`.
    Argv(Vec<String>),
}

impl OneOff {
    /// The command given after `--`: None if there is none.
    pub fn from_args(mut args: Vec<String>) -> Option<Self> {
        match args.len() {
            0 => None,
            1 => args.pop().map(Self::Shell),
            _ => Some(Self::Argv(args)),
        }
    }

    /// The bash script that runs it. An argv becomes `exec --` and each word in single quotes,
    /// which bash takes literally whatever the word holds, so the words reach the program as
    /// given; `exec` also keeps the exit status and the signals the program's own.
    pub fn script(&self) -> String {
        match self {
            Self::Shell(line) => line.clone(),
            Self::Argv(words) => {
                let mut script = String::from("exec --");
                for w in words {
                    script.push(' ');
                    script.push_str(&single_quoted(w));
                }
                script
            }
        }
    }
}

/// `word` inside single quotes; a quote in it ends the quoting, adds `\'` and starts again.
fn single_quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn one_argument_is_a_command_line_and_several_are_an_argv() {
        assert_eq!(OneOff::from_args(vec![]), None);
        assert_eq!(OneOff::from_args(args(&["ls -l; id"])), Some(OneOff::Shell("ls -l; id".into())));
        assert_eq!(OneOff::from_args(args(&["a", "x;id"])), Some(OneOff::Argv(args(&["a", "x;id"]))));
        assert_eq!(OneOff::Shell("ls -l; id".into()).script(), "ls -l; id");
    }

    #[test]
    fn argv_words_are_quoted_so_bash_takes_them_literally() {
        let cmd = OneOff::Argv(args(&["printf", "%s|", "x;id", "$(id)", "it's", "", "-n"]));
        assert_eq!(cmd.script(), r"exec -- 'printf' '%s|' 'x;id' '$(id)' 'it'\''s' '' '-n'");
    }
}
