//! `voice_bytes`: arbitrary bytes through `vox_voice_load`, the C ABI's voice reader. A loaded
//! voice must save back to exactly the bytes it was loaded from (the format is canonical), and
//! its handle must be released once (a second release is refused, not a double free).
//!
//! The format ends in a SHA-256 of everything before it, which a mutation almost never keeps
//! right, so each input is loaded twice: as it is (the checksum check), and with its last 32
//! bytes replaced by the right checksum (everything behind the check: lengths, limits, flags).

use sha2::{Digest, Sha256};
use voxkit::ffi::*;

pub fn run(data: &[u8]) {
    load(data);
    if data.len() >= 32 {
        let mut fixed = data.to_vec();
        let body = fixed.len() - 32;
        let digest = Sha256::digest(&fixed[..body]);
        fixed[body..].copy_from_slice(&digest);
        load(&fixed);
    }
}

fn load(data: &[u8]) {
    let mut voice: *mut VoxVoice = std::ptr::null_mut();
    // A Vec's pointer, never dangling even for 0 bytes (NULL is refused before the length).
    let st = unsafe { vox_voice_load(data.as_ptr(), data.len(), &mut voice) };
    if st != VOX_OK {
        assert!(voice.is_null(), "out-param written on failure");
        assert!(matches!(st, VOX_ERR_INVALID_ARGUMENT), "vox_voice_load returned {st} ({:?})", last_error());
        return;
    }
    let mut need = 0usize;
    let st = unsafe { vox_voice_save(voice, std::ptr::null_mut(), 0, &mut need) };
    assert!(st == VOX_ERR_BUFFER_TOO_SMALL || (st == VOX_OK && need == 0), "size query: {st}");
    let mut buf = vec![0u8; need];
    let st = unsafe { vox_voice_save(voice, buf.as_mut_ptr(), buf.len(), &mut need) };
    assert_eq!(st, VOX_OK, "{:?}", last_error());
    assert_eq!(buf, data, "a loaded voice does not save back to its bytes");
    assert_eq!(unsafe { vox_voice_release(voice) }, VOX_OK);
    assert_eq!(unsafe { vox_voice_release(voice) }, VOX_ERR_INVALID_ARGUMENT, "double release accepted");
}

fn last_error() -> String {
    let mut buf = vec![0u8; 512];
    let n = unsafe { vox_last_error(buf.as_mut_ptr() as *mut _, buf.len()) };
    buf.truncate(n.saturating_sub(1).min(511));
    String::from_utf8_lossy(&buf).into_owned()
}
