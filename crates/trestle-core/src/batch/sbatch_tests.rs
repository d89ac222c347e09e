use super::*;
use crate::batch::deps::{DepKind, Dependency};

const SCRIPT: &str = r#"#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH -a 0-9%2          # ten tasks, two at a time
#SBATCH -c 2
#SBATCH --mem=4G
#SBATCH -t 1-02:30:00
#SBATCH --output=logs/%x_%A_%a.out
#SBATCH --error "logs/%x_%A_%a.err"
#SBATCH --dependency=afterok:12:13
#SBATCH --gres=gpu:a100:2
#SBATCH -p short
#SBATCH --mail-type=END
#SBATCH -N 1 -n 1
##SBATCH --time=5           (commented out twice: ignored)

module load python
#SBATCH --job-name=too-late
python sweep.py $SLURM_ARRAY_TASK_ID
"#;

fn ctx() -> SubmitContext {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), "/usr/bin".to_string());
    env.insert("PROJECT".to_string(), "x".to_string());
    env.insert("GITHUB_TOKEN".to_string(), "secret".to_string());
    env.insert("TRESTLE_TOKEN".to_string(), "secret".to_string());
    env.insert("AWS_SECRET_ACCESS_KEY".to_string(), "secret".to_string());
    SubmitContext {
        script_name: "sweep.sh".into(),
        args: vec!["a b".into()],
        submit_dir: "/home/ada/proj".into(),
        submit_host: "login1".into(),
        user: "ada".into(),
        env,
    }
}

fn words(s: &str) -> Vec<String> {
    split_words(s).unwrap()
}

#[test]
fn directives_are_read_until_the_first_command() {
    let o = SbatchOptions::from_script(SCRIPT).unwrap();
    assert_eq!(o.job_name.as_deref(), Some("sweep"));
    assert_eq!(o.array.as_deref(), Some("0-9%2"));
    assert_eq!(o.cpus_per_task.as_deref(), Some("2"));
    assert_eq!(o.time.as_deref(), Some("1-02:30:00"));
    assert_eq!(o.error.as_deref(), Some("logs/%x_%A_%a.err"));
    assert_eq!(o.nodes.as_deref(), Some("1"));
    assert_eq!(o.ntasks.as_deref(), Some("1"));
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    // An option Trestle does not take is refused by name.
    let e = SbatchOptions::from_script("#!/bin/sh\n#SBATCH --frobnicate\n").unwrap_err();
    assert_eq!(e.code, "unsupported-option");
    assert!(e.message.contains("`--frobnicate`"), "{}", e.message);
    // --account is the project; --comment a tag; --requeue changes nothing.
    let o2 = SbatchOptions::from_script(
        "#SBATCH -A physics\n#SBATCH --comment=run7\n#SBATCH --requeue\n",
    )
    .unwrap();
    let r = o2.to_request(&ctx()).unwrap();
    assert_eq!(r.project.as_deref(), Some("physics"));
    assert_eq!(r.tags.get("comment").map(String::as_str), Some("run7"));
    assert_eq!(o2.warnings.len(), 1, "--requeue: {:?}", o2.warnings);
    assert_eq!(o.mail_type.as_deref(), Some("END"));
}

#[test]
fn builds_the_request() {
    let o = SbatchOptions::from_script(SCRIPT).unwrap();
    let r = o.to_request(&ctx()).unwrap();
    assert_eq!(r.name.as_deref(), Some("sweep"));
    assert_eq!(r.queue.as_deref(), Some("short"));
    assert_eq!(r.cpus, Some(2));
    assert_eq!(r.memory, Some(Quantity::Number(4096)));
    assert_eq!(r.gpus, Some(2));
    assert_eq!(r.timeout, Some(Quantity::Number(95_400)));
    assert_eq!(r.array.as_deref(), Some("0-9%2"));
    assert_eq!(
        r.after,
        vec![
            Dependency {
                kind: DepKind::AfterOk,
                job: 12
            },
            Dependency {
                kind: DepKind::AfterOk,
                job: 13
            }
        ]
    );
    assert_eq!(
        r.command,
        Some(CommandRequest::Script(
            "chmod +x \"$TRESTLE_SCRATCH\"/'sweep.sh' && exec \"$TRESTLE_SCRATCH\"/'sweep.sh' 'a b'"
                .into()
        ))
    );
    // --export=ALL (the default) keeps ordinary variables, never secrets.
    assert_eq!(r.env.get("PROJECT").map(String::as_str), Some("x"));
    assert!(
        r.env
            .keys()
            .all(|k| !k.contains("TOKEN") && !k.contains("SECRET"))
    );
    let s = r.slurm.clone().unwrap();
    assert_eq!(s.user.as_deref(), Some("ada"));
    assert_eq!(s.cpus_per_task, 2);
    let spec = r.validate().unwrap();
    assert_eq!(spec.flow.array.unwrap().parallel, Some(2));
}

#[test]
fn command_line_wins() {
    let mut cli = SbatchOptions::default();
    let w = words("-J cli --time=10 -c4 --parsable --array 1,3 script.sh arg1 --notanoption");
    let used = cli.parse_words(&w).unwrap();
    assert_eq!(w[used], "script.sh");
    assert!(cli.parsable);
    let merged = cli.over(SbatchOptions::from_script(SCRIPT).unwrap());
    assert_eq!(merged.job_name.as_deref(), Some("cli"));
    assert_eq!(merged.array.as_deref(), Some("1,3"));
    assert_eq!(
        merged.mem.as_deref(),
        Some("4G"),
        "directive kept when not overridden"
    );
    let r = merged.to_request(&ctx()).unwrap();
    assert_eq!(
        r.timeout,
        Some(Quantity::Number(600)),
        "a bare Slurm time is minutes"
    );
    assert_eq!(r.cpus, Some(4));
}

#[test]
fn chdir_export_and_mem_per_cpu() {
    let mut o = SbatchOptions::default();
    o.parse_words(&words(
        "-D out --export=NONE,A=1,PROJECT -n 2 -c 2 --mem-per-cpu=1G",
    ))
    .unwrap();
    let r = o.to_request(&ctx()).unwrap();
    assert_eq!(
        r.slurm.as_ref().unwrap().chdir.as_deref(),
        Some("/home/ada/proj/out")
    );
    assert_eq!(r.env.len(), 2);
    assert_eq!(r.env["A"], "1");
    assert_eq!(r.env["PROJECT"], "x");
    assert_eq!(r.cpus, Some(4));
    assert_eq!(r.memory, Some(Quantity::Number(4096)));
}

#[test]
fn errors_name_the_option() {
    let cases = [
        ("-N 2", "--nodes", "unsupported-multi-node"),
        ("--nodes=2-4", "--nodes", "unsupported-multi-node"),
        ("-c zero", "--cpus-per-task", "invalid-option"),
        ("-t soon", "--time", "invalid-duration"),
        ("--mem=lots", "--mem", "invalid-memory"),
        ("-d singleton", "--dependency", "invalid-dependency"),
        ("--gres=fpga:1", "--gres", "invalid-option"),
        ("--export=1BAD", "--export", "invalid-env"),
    ];
    for (args, field, code) in cases {
        let mut o = SbatchOptions::default();
        o.parse_words(&words(args)).unwrap();
        let e = o.to_request(&ctx()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{args}: {e:?}");
        assert_eq!(e.code, code, "{args}");
    }
    let mut o = SbatchOptions::default();
    let e = o.parse_words(&words("--job-name")).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("--job-name"));
    assert!(SbatchOptions::from_script("#SBATCH -J 'open\n").is_err());
    let bad_array = SbatchOptions {
        array: Some("9-1".into()),
        ..Default::default()
    };
    let e = bad_array
        .to_request(&ctx())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("array"));
}

#[test]
fn words_split_like_a_shell() {
    assert_eq!(
        words(r#"a "b c" 'd e' f\ g"#),
        vec!["a", "b c", "d e", "f g"]
    );
    assert!(split_words("'x").is_err());
    assert_eq!(strip_comment("-J x # note"), "-J x");
}
