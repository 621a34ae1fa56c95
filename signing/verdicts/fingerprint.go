package verdicts

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strconv"

	"github.com/sigil-project/sigil/signing/policy"
)

// ReadFileFunc reads a file a policy names (keyPath, caRootsPath, ...).
type ReadFileFunc func(path string) ([]byte, error)

// Fingerprint hashes a sigstoreSigned requirement and every byte of the key
// material it names (keys, CA roots and intermediates, Rekor keys, whether
// inline or in files), so a verdict cached under it is never reused once
// the requirement or a key file changes. Callers that then parse the same
// files should read them through one memoising ReadFileFunc, so the
// fingerprint and the keys used come from the same bytes.
func Fingerprint(req *policy.SigstoreSigned, read ReadFileFunc) ([]byte, error) {
	h := sha256.New()
	reqJSON, err := req.MarshalJSON()
	if err != nil {
		return nil, err
	}
	writeField(h, "requirement", reqJSON)

	file := func(what, path string) error {
		data, err := read(path)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		writeField(h, what, data)
		return nil
	}
	switch {
	case req.KeyPath != "":
		data, err := read(req.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("sigstoreSigned keyPath: %w", err)
		}
		writeField(h, req.KeyPath, data)
	case req.KeyPaths != nil:
		for _, p := range req.KeyPaths {
			data, err := read(p)
			if err != nil {
				return nil, fmt.Errorf("sigstoreSigned keyPath: %w", err)
			}
			writeField(h, p, data)
		}
	case req.KeyData != nil:
		writeField(h, "keyData", req.KeyData)
	case req.KeyDatas != nil:
		for i, d := range req.KeyDatas {
			writeField(h, "keyDatas["+strconv.Itoa(i)+"]", d)
		}
	case req.PKI != nil:
		if err := pathOrData(h, file, "pki caRoots", req.PKI.CARootsPath, req.PKI.CARootsData); err != nil {
			return nil, err
		}
		if req.PKI.CAIntermediatesPath != "" || req.PKI.CAIntermediatesData != nil {
			if err := pathOrData(h, file, "pki caIntermediates", req.PKI.CAIntermediatesPath, req.PKI.CAIntermediatesData); err != nil {
				return nil, err
			}
		}
	case req.Fulcio != nil:
		if err := pathOrData(h, file, "fulcio ca", req.Fulcio.CAPath, req.Fulcio.CAData); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("sigstoreSigned requirement has no key, pki or fulcio")
	}

	switch {
	case req.RekorPublicKeyPath != "":
		if err := file("rekorPublicKeyPath", req.RekorPublicKeyPath); err != nil {
			return nil, err
		}
	case req.RekorPublicKeyPaths != nil:
		for _, p := range req.RekorPublicKeyPaths {
			if err := file("rekorPublicKeyPaths", p); err != nil {
				return nil, err
			}
		}
	case req.RekorPublicKeyData != nil:
		writeField(h, "rekorPublicKeyData", req.RekorPublicKeyData)
	case req.RekorPublicKeyDatas != nil:
		for _, d := range req.RekorPublicKeyDatas {
			writeField(h, "rekorPublicKeyDatas", d)
		}
	}
	return h.Sum(nil), nil
}

func pathOrData(h hash.Hash, file func(what, path string) error, what, path string, data []byte) error {
	if path != "" {
		return file(what, path)
	}
	writeField(h, what, data)
	return nil
}

// writeField feeds a length-prefixed field to h, so that no two different
// inputs hash alike.
func writeField(h hash.Hash, name string, data []byte) {
	fmt.Fprintf(h, "%d:%s:%d:", len(name), name, len(data))
	h.Write(data)
}

// MemoReadFile returns read wrapped so that each path is read once.
func MemoReadFile(read ReadFileFunc) ReadFileFunc {
	type result struct {
		data []byte
		err  error
	}
	seen := map[string]result{}
	return func(path string) ([]byte, error) {
		if r, ok := seen[path]; ok {
			return r.data, r.err
		}
		data, err := read(path)
		seen[path] = result{data, err}
		return data, err
	}
}
