//! Benchmark: parse + evaluate a generated configuration of N resources
//! (with references, `count` and `for_each`), reporting time and peak heap.
//! Run: `cargo bench --bench parse_eval` (sizes: 1k, 10k, 100k);
//! `INFRA_BENCH_DYNAMIC=1` adds `dynamic` blocks, `INFRA_BENCH_MODULES=1`
//! puts the resources in instances of a module called with `for_each`.
//! Goal (issue 2): 10,000 resources under 0.2 s and 100 MB on one core,
//! growing linearly to 100,000.
//!
//! The allocator of the `infra` binary (mimalloc) is wrapped to count
//! allocations and the peak of live heap bytes. Each size runs several times; the
//! best and the median wall time are printed, with the process's peak RSS
//! (which also holds the generated text). For the whole binary on a cold
//! start, write the configurations with `INFRA_BENCH_WRITE=DIR` and run
//! `/usr/bin/time -v infra -C DIR/10000 validate`.

use std::fmt::Write as _;
use std::time::Instant;

use infra::check::{CheckOptions, check};

#[path = "support/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::{allocations, peak_since, start_peak};

/// N resources: 1 in 10 is a VPC; each VPC gets a counted subnet block of 4
/// and a for_each security group block of 3; the rest are instances that
/// refer to subnets. Spread over files of ~1,000 resources. With `dynamic`,
/// each security group also generates an `ingress` block per port and each
/// instance an `ebs_block_device` per disk, from `dynamic` blocks.
fn generate(resources: usize, dir: &std::path::Path, dynamic: bool) {
    let mut written = 0;
    let mut file_index = 0;
    let mut text = String::from(
        "variable env {\n  default = \"bench\"\n}\n\nlocals {\n  prefix = \"infra-${var.env}\"\n  ports  = { http = 80, https = 443, ssh = 22 }\n  disks  = [{ name = \"/dev/sdb\", size = 20 }, { name = \"/dev/sdc\", size = 50 }]\n}\n\n",
    );
    let (ingress, disks) = if dynamic {
        (
            "  dynamic \"ingress\" {\n    for_each = local.ports\n    iterator = rule\n    content {\n      port  = rule.value\n      label = \"${each.key}-${rule.key}\"\n    }\n  }\n",
            "  dynamic \"ebs_block_device\" {\n    for_each = local.disks\n    content {\n      device_name = ebs_block_device.value.name\n      volume_size = ebs_block_device.value.size\n    }\n  }\n",
        )
    } else {
        ("", "")
    };
    let mut group = 0;
    while written < resources {
        let _ = write!(
            text,
            "resource aws_vpc v{group} {{\n  cidr_block = cidrsubnet(\"10.0.0.0/8\", 8, {m})\n  tags       = {{ Name = \"${{local.prefix}}-{group}\" }}\n}}\n\n\
             resource aws_subnet s{group} {{\n  count      = 4\n  vpc_id     = aws_vpc.v{group}.id\n  cidr_block = cidrsubnet(aws_vpc.v{group}.cidr_block, 8, count.index)\n}}\n\n\
             resource aws_security_group g{group} {{\n  for_each = local.ports\n  name     = \"${{local.prefix}}-{group}-${{each.key}}\"\n  port     = each.value\n  vpc_id   = aws_vpc.v{group}.id\n{ingress}}}\n\n",
            m = group % 256
        );
        written += 1 + 4 + 3;
        let mut instance = 0;
        while instance < 2 && written < resources {
            let _ = write!(
                text,
                "resource aws_instance i{group}_{instance} {{\n  ami           = \"ami-12c6146b\"\n  instance_type = \"t3.micro\"\n  subnet_id     = aws_subnet.s{group}[{instance}].id\n  security_groups = [for g in aws_security_group.g{group} : g.name]\n  tags          = merge({{ Name = \"web-{group}-{instance}\" }}, {{ Env = var.env }})\n{disks}}}\n\n"
            );
            written += 1;
            instance += 1;
        }
        group += 1;
        if text.len() > 150_000 {
            std::fs::write(dir.join(format!("part{file_index:04}.infra")), &text).expect("write");
            file_index += 1;
            text.clear();
        }
    }
    std::fs::write(dir.join(format!("part{file_index:04}.infra")), &text).expect("write");
}

/// The same resources as [`generate`], each group of ten (a VPC, its
/// subnets, security groups and two instances) in an instance of one
/// module called with `for_each`: `module.group["g12"].aws_vpc.v`.
fn generate_in_modules(resources: usize, dir: &std::path::Path, dynamic: bool) {
    let (ingress, disks) = if dynamic {
        (
            "  dynamic \"ingress\" {\n    for_each = local.ports\n    iterator = rule\n    content {\n      port  = rule.value\n      label = \"${each.key}-${rule.key}\"\n    }\n  }\n",
            "  dynamic \"ebs_block_device\" {\n    for_each = local.disks\n    content {\n      device_name = ebs_block_device.value.name\n      volume_size = ebs_block_device.value.size\n    }\n  }\n",
        )
    } else {
        ("", "")
    };
    let module_dir = dir.join("modules/group");
    std::fs::create_dir_all(&module_dir).expect("create the module directory");
    let module = format!(
        "variable index {{\n  type = number\n}}\n\nvariable prefix {{\n  type = string\n}}\n\n\
         locals {{\n  ports = {{ http = 80, https = 443, ssh = 22 }}\n  disks = [{{ name = \"/dev/sdb\", size = 20 }}, {{ name = \"/dev/sdc\", size = 50 }}]\n}}\n\n\
         resource aws_vpc v {{\n  cidr_block = cidrsubnet(\"10.0.0.0/8\", 8, var.index % 256)\n  tags       = {{ Name = \"${{var.prefix}}-${{var.index}}\" }}\n}}\n\n\
         resource aws_subnet s {{\n  count      = 4\n  vpc_id     = aws_vpc.v.id\n  cidr_block = cidrsubnet(aws_vpc.v.cidr_block, 8, count.index)\n}}\n\n\
         resource aws_security_group g {{\n  for_each = local.ports\n  name     = \"${{var.prefix}}-${{var.index}}-${{each.key}}\"\n  port     = each.value\n  vpc_id   = aws_vpc.v.id\n{ingress}}}\n\n\
         resource aws_instance i {{\n  count           = 2\n  ami             = \"ami-12c6146b\"\n  instance_type   = \"t3.micro\"\n  subnet_id       = aws_subnet.s[count.index].id\n  security_groups = [for g in aws_security_group.g : g.name]\n  tags            = merge({{ Name = \"web-${{var.index}}-${{count.index}}\" }}, {{ Env = var.prefix }})\n{disks}}}\n\n\
         output vpc_id {{\n  value = aws_vpc.v.id\n}}\n"
    );
    std::fs::write(module_dir.join("main.infra"), module).expect("write");
    let groups = resources.div_ceil(10);
    let root = format!(
        "variable env {{\n  default = \"bench\"\n}}\n\n\
         module group {{\n  for_each = {{ for i in range({groups}) : \"g${{i}}\" => i }}\n  source   = \"./modules/group\"\n  index    = each.value\n  prefix   = \"infra-${{var.env}}\"\n}}\n\n\
         output vpcs {{\n  value = [for g in module.group : g.vpc_id]\n}}\n"
    );
    std::fs::write(dir.join("main.infra"), root).expect("write");
}

/// The process's peak resident set size (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    println!(
        "{:>10} {:>10} {:>9} {:>9} {:>11} {:>12} {:>10} {:>9}",
        "resources",
        "instances",
        "best s",
        "median s",
        "parse s",
        "µs/resource",
        "heap MiB",
        "RSS MiB"
    );
    // INFRA_BENCH_SIZES=10000 INFRA_BENCH_RUNS=1 narrows the run (e.g. for a profiler);
    // INFRA_BENCH_DYNAMIC=1 adds `dynamic` blocks to the generated resources.
    // INFRA_BENCH_MODULES=1 puts each group of ten resources in an instance
    // of a module called with `for_each`.
    let dynamic = std::env::var("INFRA_BENCH_DYNAMIC").is_ok_and(|v| !v.is_empty() && v != "0");
    let in_modules = std::env::var("INFRA_BENCH_MODULES").is_ok_and(|v| !v.is_empty() && v != "0");
    let generate = |resources: usize, dir: &std::path::Path, dynamic: bool| {
        if in_modules {
            generate_in_modules(resources, dir, dynamic);
        } else {
            generate(resources, dir, dynamic);
        }
    };
    let sizes: Vec<usize> = std::env::var("INFRA_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    let runs: usize = std::env::var("INFRA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    // INFRA_BENCH_WRITE=DIR only writes the configurations (DIR/<size>/) for
    // measuring the real binary, e.g. `/usr/bin/time -v infra -C DIR/10000 validate`.
    if let Some(out) = std::env::var_os("INFRA_BENCH_WRITE") {
        for resources in sizes {
            let dir = std::path::Path::new(&out).join(resources.to_string());
            std::fs::create_dir_all(&dir).expect("create output directory");
            generate(resources, &dir, dynamic);
            println!("wrote {}", dir.display());
        }
        return;
    }
    for resources in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        generate(resources, dir.path(), dynamic);
        let options = CheckOptions {
            dir: dir.path().to_path_buf(),
            ..CheckOptions::default()
        };
        let mut times = Vec::new();
        let mut peak = 0;
        let mut check_allocations = 0;
        let mut instances = 0;
        for _ in 0..runs {
            let base = start_peak();
            let allocations_before = allocations();
            let started = Instant::now();
            let checked = check(&options);
            check_allocations = allocations() - allocations_before;
            let seconds = started.elapsed().as_secs_f64();
            assert!(
                !checked.diagnostics.has_errors(),
                "generated configuration must be valid"
            );
            instances = checked
                .evaluated
                .as_ref()
                .map(|e| e.all_resources().len())
                .unwrap_or(0);
            drop(checked);
            times.push(seconds);
            peak = peak.max(peak_since(base));
        }
        let mut parse_seconds = 0.0;
        let mut parse_allocations = 0;
        for path in infra::config::infra_files(dir.path()).expect("list") {
            let text = std::fs::read_to_string(path).expect("read");
            let before = allocations();
            let started = Instant::now();
            let parsed = infra::syntax::parse_file(infra::syntax::FileId(0), &text);
            parse_seconds += started.elapsed().as_secs_f64();
            parse_allocations += allocations() - before;
            drop(parsed);
        }
        if std::env::var_os("INFRA_BENCH_ALLOCATIONS").is_some() {
            eprintln!(
                "{resources}: {check_allocations} allocations in check(), {parse_allocations} of them parsing"
            );
        }
        times.sort_by(f64::total_cmp);
        let best = times[0];
        let median = times[times.len() / 2];
        println!(
            "{resources:>10} {instances:>10} {best:>9.3} {median:>9.3} {parse_seconds:>11.3} {:>12.2} {:>10.1} {:>9.1}",
            best * 1e6 / resources as f64,
            peak as f64 / (1024.0 * 1024.0),
            peak_rss_mib()
        );
    }
}
