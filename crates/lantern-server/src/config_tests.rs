//! Tests of configuration resolution: defaults, layering, `[[models]]`, and errors.
use super::*;

#[test]
fn defaults() {
    let cfg = ServeConfig::resolve(ServeArgs::default()).unwrap();
    assert_eq!(cfg.models.len(), 1);
    assert_eq!(cfg.models[0].id, "smollm2-135m-instruct.q4_1");
    assert!(cfg.models[0].default_model);
    assert_eq!(cfg.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.models[0].engine.parallel, 4);
}

#[test]
fn flags_override_file() {
    let dir = std::env::temp_dir().join(format!("lantern-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("l.toml");
    std::fs::write(
        &path,
        "port = 9000\nparallel = 2\nmodel = \"x/My-Model.gguf\"\n",
    )
    .unwrap();
    let args = ServeArgs {
        config: Some(path.clone()),
        parallel: Some(3),
        ..Default::default()
    };
    let cfg = ServeConfig::resolve(args).unwrap();
    assert_eq!(cfg.addr.port(), 9000);
    assert_eq!(cfg.models[0].engine.parallel, 3);
    assert_eq!(cfg.models[0].id, "my-model");
    assert!(!cfg.models[0].default_model);

    std::fs::write(&path, "port = 9000\nparalel = 2\n").unwrap();
    let err = ServeConfig::resolve(ServeArgs {
        config: Some(path.clone()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("paralel") && err.contains("line 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lantern-cfg2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn resolve_file(path: &Path) -> Result<ServeConfig, ConfigError> {
    ServeConfig::resolve(ServeArgs {
        config: Some(path.to_path_buf()),
        ..Default::default()
    })
}

#[test]
fn models_table() {
    let path = write(
        "models.toml",
        r#"
parallel = 2
max_queue = 3
[[models]]
id = "small"
path = "a.gguf"
aliases = ["gpt-4o-mini"]
replicas = 2
load = "lazy"
main_gpu = 1
[[models]]
path = "dir/Other.gguf"
ctx_size = 4096
max_queue = 7
"#,
    );
    let cfg = resolve_file(&path).unwrap();
    assert_eq!(cfg.models.len(), 2);
    let (a, b) = (&cfg.models[0], &cfg.models[1]);
    assert_eq!(
        (a.id.as_str(), a.replicas, a.load),
        ("small", 2, LoadPolicy::Lazy)
    );
    assert_eq!(a.aliases, vec!["gpt-4o-mini".to_string()]);
    assert_eq!(a.engine.parallel, 2);
    assert_eq!(a.engine.max_queue, Some(3));
    assert_eq!(a.engine.main_gpu, 1);
    assert_eq!((b.id.as_str(), b.engine.ctx_size), ("other", 4096));
    assert_eq!(
        b.engine.max_queue,
        Some(7),
        "the model's own max_queue wins"
    );
}

#[test]
fn config_errors_name_file_key_and_reason() {
    let dup = write(
        "dup.toml",
        "[[models]]\nid = \"a\"\npath = \"x.gguf\"\n[[models]]\nid = \"b\"\npath = \"y.gguf\"\naliases = [\"a\"]\n",
    );
    let err = resolve_file(&dup).unwrap_err().to_string();
    assert!(
        err.contains("dup.toml") && err.contains("duplicate") && err.contains("'a'"),
        "{err}"
    );
    let unknown = write(
        "unknown.toml",
        "[[models]]\npath = \"x.gguf\"\nreplica = 2\n",
    );
    let err = resolve_file(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("unknown.toml") && err.contains("replica") && err.contains("line 3"),
        "{err}"
    );
    let wrong = write("wrong.toml", "port = \"eighty\"\n");
    let err = resolve_file(&wrong).unwrap_err().to_string();
    assert!(
        err.contains("wrong.toml") && err.contains("line 1"),
        "{err}"
    );
    let missing = ServeConfig::resolve(ServeArgs {
        config: Some(PathBuf::from("/nonexistent/lantern.toml")),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(missing.contains("/nonexistent/lantern.toml"), "{missing}");
}

#[test]
fn hub_sources() {
    let ok = write(
        "hub.toml",
        "model_cache_dir = \"/tmp/lc\"\n[[models]]\nsource = \"hf:org/repo/sub/Tiny-Q4.gguf\"\n",
    );
    let m = &resolve_file(&ok).unwrap().models[0];
    assert_eq!(m.id, "tiny-q4");
    assert_eq!(m.source.as_ref().unwrap().repo, "org/repo");
    assert_eq!(m.cache_dir, PathBuf::from("/tmp/lc"));
    let both = write(
        "both.toml",
        "[[models]]\nsource = \"hf:a/b/c.gguf\"\npath = \"x.gguf\"\n",
    );
    let err = resolve_file(&both).unwrap_err().to_string();
    assert!(
        err.contains("both.toml") && err.contains("models[0]") && err.contains("exactly one"),
        "{err}"
    );
    let bad = write("bad.toml", "[[models]]\nsource = \"org/repo/c.gguf\"\n");
    let err = resolve_file(&bad).unwrap_err().to_string();
    assert!(err.contains("hf:owner/repo/file.gguf"), "{err}");
}

#[test]
fn gpu_layers_need_a_gpu_build() {
    let path = write(
        "gpu.toml",
        "[[models]]\npath = \"x.gguf\"\ngpu_layers = \"all\"\n",
    );
    let result = resolve_file(&path);
    if cfg!(any(feature = "cuda", feature = "vulkan")) {
        assert_eq!(result.unwrap().models[0].engine.gpu_layers, u32::MAX);
    } else {
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("gpu_layers")
                && err.contains("--features cuda")
                && err.contains("--features vulkan"),
            "{err}"
        );
    }
}

#[test]
fn gpu_flags_override_the_file() {
    let path = write("gpu-flat.toml", "gpu_layers = \"all\"\nmain_gpu = 2\n");
    let resolve = |gpu_layers, main_gpu| {
        ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            gpu_layers,
            main_gpu,
            ..Default::default()
        })
    };
    // --gpu-layers 0 runs on the CPU whatever the file says, in any build.
    let engine = resolve(Some(0), None).unwrap().models[0].engine.clone();
    assert_eq!((engine.gpu_layers, engine.main_gpu), (0, 2));
    let engine = resolve(Some(0), Some(1)).unwrap().models[0].engine.clone();
    assert_eq!(engine.main_gpu, 1);
    if cfg!(any(feature = "cuda", feature = "vulkan")) {
        let engine = resolve(None, None).unwrap().models[0].engine.clone();
        assert_eq!(engine.gpu_layers, u32::MAX);
        let engine = resolve(Some(7), None).unwrap().models[0].engine.clone();
        assert_eq!(engine.gpu_layers, 7);
    } else {
        let err = resolve(None, None).unwrap_err().to_string();
        assert!(err.contains("gpu_layers"), "{err}");
    }
}

#[test]
fn gpu_layers_flag_takes_a_count_or_all() {
    assert_eq!(parse_gpu_layers("all"), Ok(u32::MAX));
    assert_eq!(parse_gpu_layers("ALL"), Ok(u32::MAX));
    assert_eq!(parse_gpu_layers("12"), Ok(12));
    let err = parse_gpu_layers("most").unwrap_err();
    assert!(err.contains("`all`") && err.contains("most"), "{err}");
}

#[test]
fn rejects_bad_values() {
    let err = ServeConfig::resolve(ServeArgs {
        parallel: Some(0),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("parallel"));
}

#[test]
fn chat_templates_are_read_and_compiled_at_start_up() {
    let template = write(
        "t.jinja",
        "{% for m in messages %}{{ m.content }}{% endfor %}",
    );
    let cfg = ServeConfig::resolve(ServeArgs {
        chat_template_file: Some(template.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        cfg.models[0].engine.chat_template.as_deref(),
        Some("{% for m in messages %}{{ m.content }}{% endfor %}")
    );

    let per_model = write(
        "tm.toml",
        &format!(
            "[[models]]\nid = \"a\"\npath = \"a.gguf\"\nchat_template_file = \"{}\"\n[[models]]\nid = \"b\"\npath = \"b.gguf\"\nchat_template = \"{{{{ messages[0].content }}}}\"\n",
            template.display()
        ),
    );
    let cfg = resolve_file(&per_model).unwrap();
    assert!(cfg.models[0].engine.chat_template.is_some());
    assert_eq!(
        cfg.models[1].engine.chat_template.as_deref(),
        Some("{{ messages[0].content }}")
    );

    let err = ServeConfig::resolve(ServeArgs {
        chat_template_file: Some("missing.jinja".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("chat_template_file") && err.contains("missing.jinja"),
        "{err}"
    );

    let err = ServeConfig::resolve(ServeArgs {
        chat_template: Some("{% for m in messages %}".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("chat_template") && err.contains("invalid Jinja"),
        "{err}"
    );

    let both = write(
        "both.toml",
        "[[models]]\nid = \"a\"\npath = \"a.gguf\"\nchat_template = \"x\"\nchat_template_file = \"t.jinja\"\n",
    );
    let err = resolve_file(&both).unwrap_err().to_string();
    // File, key and reason on one line.
    assert!(
        err.contains(&*both.to_string_lossy())
            && err.contains("models[0] (a).chat_template")
            && err.contains("not both"),
        "{err}"
    );

    // The flag is for one --model; with [[models]] it would be ambiguous.
    let err = ServeConfig::resolve(ServeArgs {
        config: Some(per_model),
        chat_template_file: Some(template),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("each entry"), "{err}");
}

#[test]
fn responses_store_table() {
    let path = write(
        "responses.toml",
        "model = \"a.gguf\"\n[responses]\nmax_entries = 5\nttl_secs = 60\n",
    );
    let cfg = resolve_file(&path).unwrap();
    assert_eq!(cfg.responses.max_entries, 5);
    assert_eq!(cfg.responses.ttl_secs, 60);
    assert_eq!(
        cfg.responses.max_bytes,
        crate::response_store::ResponseStoreConfig::default().max_bytes
    );
    let bad = write("responses-bad.toml", "[responses]\nmax_entrys = 5\n");
    let err = resolve_file(&bad).unwrap_err().to_string();
    assert!(err.contains("max_entrys"), "{err}");
}

#[test]
fn lora_adapters_per_model_with_scale_default_and_aliases() {
    let path = write(
        "lora.toml",
        r#"
[[models]]
id = "base"
path = "b.gguf"
lora = [
  { name = "pirate", path = "p.gguf", aliases = ["arr"] },
  { name = "calm", path = "c.gguf", scale = 0.5 },
]
"#,
    );
    let cfg = resolve_file(&path).unwrap();
    let a = &cfg.models[0].adapters;
    assert_eq!(a.len(), 2);
    assert_eq!(
        (
            a[0].spec.name.as_str(),
            a[0].spec.scale,
            a[0].aliases.clone()
        ),
        ("pirate", 1.0, vec!["arr".to_string()])
    );
    assert_eq!(a[1].spec.scale, 0.5);
    assert_eq!(a[1].spec.path, PathBuf::from("c.gguf"));
}

#[test]
fn lora_mistakes_are_config_errors() {
    for (body, words) in [
        (
            r#"lora = [{ name = "a:b", path = "p.gguf" }]"#,
            "invalid adapter name",
        ),
        (
            r#"lora = [{ name = "a", path = "p.gguf" }, { name = "a", path = "q.gguf" }]"#,
            "two adapters are named 'a'",
        ),
        (
            r#"lora = [{ name = "a", path = "p.gguf", scail = 1 }]"#,
            "scail",
        ),
        (
            "model = \"m.gguf\"\nlora = [{ name = \"a\", path = \"p.gguf\", aliases = [\"m\"] }]",
            "duplicate model id or alias 'm'",
        ),
    ] {
        let err = resolve_file(&write("bad-lora.toml", body))
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{body}: {err}");
    }
}

#[test]
fn lora_flag_takes_name_path_and_an_optional_scale() {
    let l = parse_lora("pirate=adapters/p.gguf@0.25").unwrap();
    assert_eq!((l.name.as_str(), l.scale), ("pirate", 0.25));
    assert_eq!(l.path, PathBuf::from("adapters/p.gguf"));
    assert_eq!(parse_lora("x=y.gguf").unwrap().scale, 1.0);
    assert!(parse_lora("no-equals").unwrap_err().contains("NAME=PATH"));
    assert!(parse_lora("x=y.gguf@loud").unwrap_err().contains("loud"));
}

#[test]
fn speculative_settings_layer_flags_over_model_over_file() {
    let path = write(
        "spec.toml",
        r#"
speculative = { mode = "ngram", max_draft = 8 }
[[models]]
path = "a.gguf"
speculative = { min_ngram = 3 }
[[models]]
path = "b.gguf"
"#,
    );
    let cfg = resolve_file(&path).unwrap();
    let (a, b) = (
        &cfg.models[0].engine.speculative,
        &cfg.models[1].engine.speculative,
    );
    assert_eq!(
        (a.mode, a.max_draft, a.min_ngram, a.max_ngram),
        (SpecMode::Ngram, 8, 3, 4)
    );
    assert_eq!((b.mode, b.min_ngram), (SpecMode::Ngram, 2));
    let cfg = ServeConfig::resolve(ServeArgs {
        config: Some(path.clone()),
        speculative: Some(SpecMode::Off),
        draft_max: Some(4),
        ..Default::default()
    })
    .unwrap();
    let a = &cfg.models[0].engine.speculative;
    assert_eq!((a.mode, a.max_draft, a.min_ngram), (SpecMode::Off, 4, 3));
    assert_eq!(
        ServeConfig::resolve(ServeArgs::default()).unwrap().models[0]
            .engine
            .speculative,
        SpecConfig::default()
    );
}

#[test]
fn speculative_mistakes_are_config_errors() {
    for (text, key) in [
        (
            "speculative = { mode = \"fast\" }",
            "unknown variant `fast`",
        ),
        ("speculative = { max_draft = 100 }", "speculative.max_draft"),
        (
            "speculative = { min_ngram = 5, max_ngram = 3 }",
            "speculative.max_ngram",
        ),
        ("speculative = { min_ngram = 0 }", "speculative.min_ngram"),
        ("speculative = { drafts = 3 }", "drafts"),
    ] {
        let err = resolve_file(&write("bad-spec.toml", text))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}
