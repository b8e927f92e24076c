package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/tiercel/tiercel/objstore"
)

// TestCrossProcessConditionalWrites races separate processes on one
// bucket: exactly one create-only wins, and compare-and-swap increments
// from all of them lose no update.
func TestCrossProcessConditionalWrites(t *testing.T) {
	if dir := os.Getenv("TIERCEL_FS_CHILD"); dir != "" {
		child(dir)
		return
	}
	dir := t.TempDir()
	b, _ := New(dir)
	if _, err := b.Put(context.Background(), "counter", bytes.NewReader([]byte("0")), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	const procs, each = 4, 10
	var cmds []*exec.Cmd
	outs := make([]*bytes.Buffer, procs)
	for i := 0; i < procs; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrossProcessConditionalWrites$")
		cmd.Env = append(os.Environ(), "TIERCEL_FS_CHILD="+dir, fmt.Sprintf("TIERCEL_FS_EACH=%d", each), fmt.Sprintf("TIERCEL_FS_ID=%d", i))
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	wins := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
		wins += strings.Count(outs[i].String(), "WON")
	}
	if wins != 1 {
		t.Fatalf("%d processes won the create-only race", wins)
	}
	data, _, _ := objstore.ReadAll(context.Background(), b, "counter")
	if string(data) != strconv.Itoa(procs*each) {
		t.Fatalf("counter %s after %d increments from %d processes", data, procs*each, procs)
	}
}

func child(dir string) {
	b, _ := New(dir)
	ctx := context.Background()
	id := os.Getenv("TIERCEL_FS_ID")
	_, err := b.Put(ctx, "winner", bytes.NewReader([]byte(id)), objstore.PutOptions{IfNotExists: true})
	switch {
	case err == nil:
		fmt.Println("WON")
	case !errors.Is(err, objstore.ErrPrecondition):
		fmt.Println("error:", err)
		os.Exit(1)
	}
	each, _ := strconv.Atoi(os.Getenv("TIERCEL_FS_EACH"))
	for done := 0; done < each; {
		data, attrs, err := objstore.ReadAll(ctx, b, "counter")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		v, _ := strconv.Atoi(string(data))
		_, err = b.Put(ctx, "counter", bytes.NewReader([]byte(strconv.Itoa(v+1))), objstore.PutOptions{IfVersion: attrs.Version})
		if err == nil {
			done++
		} else if !errors.Is(err, objstore.ErrPrecondition) {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}
}
