package recordbatch

import (
	"testing"
)

// FuzzValidate feeds arbitrary bytes to Validate and Records: no panic, and
// whatever validates deeply must decode to its declared record count.
func FuzzValidate(f *testing.F) {
	for _, c := range codecs {
		opts := NoProducer()
		opts.Codec = c
		b, _ := Build(sampleRecords(3), opts)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, deep := range []bool{false, true} {
			batches, err := Validate(in, ValidateOptions{MaxBatchBytes: 1 << 20, Deep: deep})
			if err != nil || !deep {
				continue
			}
			for _, b := range batches {
				recs, err := Records(b)
				if err != nil {
					t.Fatalf("validated batch does not decode: %v", err)
				}
				if len(recs) != int(b.NumRecords) {
					t.Fatalf("%d records, header says %d", len(recs), b.NumRecords)
				}
			}
		}
	})
}
