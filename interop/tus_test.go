package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
)

const (
	tusSize  = 5<<20 + 12345 // bytes uploaded: five chunks and a short one
	tusChunk = 1 << 20       // bytes per PATCH
	// tusCutAfter is tus_client.mjs's cutAfter: the chunks the server
	// acknowledges before the first upload is cut.
	tusCutAfter = 2
)

// tusPass is the end of tus_client.mjs's PASS line.
var tusPass = regexp.MustCompile(`: asset (\S+) sha256 ([0-9a-f]{64}) resumed at (\d+)$`)

// tusContent returns tus_client.mjs's bytes: the SHA-256 of "switchboard
// tus interop <i>" for i = 0, 1, …, cut to size.
func tusContent(size int) []byte {
	buf := make([]byte, 0, size+sha256.Size)
	for i := 0; len(buf) < size; i++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "switchboard tus interop %d", i))
		buf = append(buf, sum[:]...)
	}
	return buf[:size]
}

// TestTusJSClient uploads to the asset API's tus endpoint with
// tus-js-client (tus_client.mjs, which says what it checks): an upload cut
// with abort() during its third PATCH and finished by a second tus.Upload
// from the offset the server kept, the asset id taken from the completing
// response's Asset-Id header. The test then downloads the asset itself and
// compares it with the bytes the script was to upload.
func TestTusJSClient(t *testing.T) {
	root := repoRoot(t)
	tl := findTools(t, root)
	s := testserver.Start(t, testserver.Options{StopTimeout: stopTimeout})
	token := cliToken(t, s, "alice-tus")

	pass := runPassing(t, "tus-js-client", []string{
		tl.node, filepath.Join(root, "interop", "tus_client.mjs"),
		"--assets", s.AssetsURL(),
		"--token", token,
		"--size", strconv.Itoa(tusSize),
		"--chunk", strconv.Itoa(tusChunk),
	}, []string{"INTEROP_NODE_MODULES=" + tl.nodeMods})

	m := tusPass.FindStringSubmatch(pass)
	if m == nil {
		t.Fatalf("PASS line %q does not match %s", pass, tusPass)
	}
	id, printed := m[1], m[2]
	resumed, err := strconv.Atoi(m[3])
	if err != nil {
		t.Fatal(err)
	}
	if resumed < tusCutAfter*tusChunk || resumed >= tusSize {
		t.Errorf("resumed at offset %d: want at least the %d bytes acknowledged before the cut, and less than %d", resumed, tusCutAfter*tusChunk, tusSize)
	}
	sum := sha256.Sum256(tusContent(tusSize))
	want := hex.EncodeToString(sum[:])
	if printed != want {
		t.Errorf("the script uploaded sha256 %s, want %s (its content differs from tusContent's)", printed, want)
	}

	req, err := http.NewRequest(http.MethodGet, s.AssetsURL()+"/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/assets/%s: %s", id, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("GET /v1/assets/%s: %v", id, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != tusSize || got != want {
		t.Errorf("GET /v1/assets/%s: %d bytes, sha256 %s; want %d, %s", id, n, got, tusSize, want)
	}
}
