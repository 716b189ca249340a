//! This machine's host name, the one place it is read.

/// The host name, trimmed; None when it is unset or unreadable. Non-UTF-8
/// bytes are replaced rather than refused: the name is only shown and compared.
pub fn get() -> Option<String> {
    let name = hostname::get().ok()?;
    let name = name.to_string_lossy().trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_kernel_s_name() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::get().as_deref(), Some(kernel.trim()));
    }
}
