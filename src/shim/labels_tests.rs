use super::*;

fn string_field(out: &mut Vec<u8>, n: u64, s: &[u8]) {
    varint(out, n << 3 | 2);
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// GetContainerResponse as containerd encodes it: id, labels map, then
/// fields of other wire types the reader must step over.
fn response(labels: &[(&str, &str)]) -> Vec<u8> {
    let mut c = Vec::new();
    string_field(&mut c, 1, b"c1");
    for (k, v) in labels {
        let mut e = Vec::new();
        string_field(&mut e, 1, k.as_bytes());
        string_field(&mut e, 2, v.as_bytes());
        string_field(&mut c, 2, &e);
    }
    varint(&mut c, 9 << 3); // a varint field
    varint(&mut c, 300);
    c.push(10 << 3 | 1); // fixed64
    c.extend_from_slice(&[0; 8]);
    string_field(&mut c, 3, b"image");
    let mut r = Vec::new();
    string_field(&mut r, 1, &c);
    r
}

#[test]
fn labels_are_read_from_a_container_record() {
    let got = container_labels(&response(&[("org.openeuler.micran.container.os", "zephyr"), ("a", "")])).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["org.openeuler.micran.container.os"], "zephyr");
    assert_eq!(got["a"], "");
    assert_eq!(container_labels(&[]).unwrap_err(), "no container in it");
    let mut truncated = response(&[("k", "v")]);
    truncated.pop();
    assert!(container_labels(&truncated).is_err());
}

#[test]
fn request_and_hpack_encodings() {
    assert_eq!(get_request("ab"), [0x0a, 2, b'a', b'b']);
    let mut out = Vec::new();
    hpack_string(&mut out, "te");
    assert_eq!(out, [2, b't', b'e']);
    // RFC 7541 C.1.2-style: 127 and more use the continuation bytes
    let long = "x".repeat(127 + 200);
    let mut out = Vec::new();
    hpack_string(&mut out, &long);
    assert_eq!(&out[..3], &[127, 200 % 128 + 128, 200 / 128]);
    assert_eq!(out.len(), 3 + long.len());
    let mut b: &[u8] = &[0xac, 0x02];
    assert_eq!(read_varint(&mut b).unwrap(), 300);
}

#[test]
fn a_missing_socket_is_a_plain_error() {
    let e = ours("unix:///nonexistent/containerd.sock", "default", "c1").unwrap_err();
    assert!(e.contains("/nonexistent/containerd.sock") && e.contains("connect"), "{e}");
}
