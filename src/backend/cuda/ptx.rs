//! What a PTX module says about itself: its ISA version and each entry's parameters. Read from the
//! text NVRTC emits (`.version 8.8`, `.visible .entry name( .param .u64 name_param_0, … )`).

/// A parameter's kind as PTX declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamClass {
    /// `.u*`, `.s*`, `.b*`: integers and pointers (pointers are `.u64`).
    Integer,
    /// `.f*`.
    Float,
    /// `.align N .b8 name[K]`: a struct passed by value.
    Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    pub class: ParamClass,
    pub bytes: usize,
}

/// One kernel entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub params: Vec<Param>,
}

/// The entries of a PTX module, in order.
pub fn entries(ptx: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry") {
        rest = &rest[at + ".entry".len()..];
        let Some(open) = rest.find('(') else { break };
        let name = rest[..open].trim().to_string();
        let Some(close) = rest[open..].find(')') else { break };
        let params = rest[open + 1..open + close].split(',').filter_map(param).collect();
        out.push(Entry { name, params });
        rest = &rest[open + close..];
    }
    out
}

// `.param .u64 .ptr .global .align 4 name_param_0` or `.param .align 4 .b8 name_param_1[12]`.
fn param(text: &str) -> Option<Param> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.first() != Some(&".param") {
        return None;
    }
    let ty = words.iter().skip(1).find(|w| {
        let w = w.trim_start_matches('.');
        matches!(w.chars().next(), Some('u' | 's' | 'b' | 'f'))
            && w[1..].chars().all(|c| c.is_ascii_digit())
            && w.len() > 1
    })?;
    let bits: usize = ty[2..].parse().ok()?;
    let count = match (text.find('['), text.find(']')) {
        (Some(a), Some(b)) if b > a => text[a + 1..b].trim().parse().ok()?,
        _ => 1,
    };
    let class = if count > 1 || text.contains('[') {
        ParamClass::Bytes
    } else if ty.starts_with(".f") {
        ParamClass::Float
    } else {
        ParamClass::Integer
    };
    Some(Param { class, bytes: bits / 8 * count })
}

/// The module's PTX ISA version ×10 (`.version 8.8` → 88).
pub fn isa_version(ptx: &str) -> Option<i32> {
    let line = ptx.lines().find(|l| l.trim_start().starts_with(".version"))?;
    let (major, minor) = line.trim_start().trim_start_matches(".version").trim().split_once('.')?;
    Some(major.parse::<i32>().ok()? * 10 + minor.trim().parse::<i32>().ok()?)
}

/// The oldest driver version that reads this PTX ISA (from NVIDIA's PTX ISA release notes: ISA 8.0
/// came with CUDA 12.0, …, 8.5 with 12.5, 8.7 with 12.8, 8.8 with 12.9).
pub fn driver_for_isa(isa: i32) -> i32 {
    match isa {
        ..=78 => 11080,
        80..=85 => 12000 + (isa - 80) * 10,
        86 => 12070,
        87 => 12080,
        88 => 12090,
        _ => 13000,
    }
}
