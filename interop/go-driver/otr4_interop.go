// otr4 interop helper (otr4 project code, not part of the Go server). Copied by
// interop/run-go-server.sh into the Go server's package directory so it can use the
// package's unexported client-side helpers (the Go server's own test flows use the same).
// It exports a Go publisher/retriever that talks to any server through an exchange
// function (send one encoded text, get the texts answered).

package prekeyserver

import (
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/otrv4/ed448"
	"github.com/otrv4/gotrx"
)

// Otr4Exchange sends one encoded message to a prekey server and returns its replies.
type Otr4Exchange func(text string) ([]string, error)

func otr4Decode(replies []string) ([]byte, error) {
	if len(replies) != 1 {
		return nil, fmt.Errorf("expected 1 reply, got %d", len(replies))
	}
	r := replies[0]
	if len(r) == 0 || r[len(r)-1] != '.' {
		return nil, errors.New("reply without trailing '.'")
	}
	b, ok := decodeMessage(r[:len(r)-1])
	if !ok {
		return nil, errors.New("reply is not base64")
	}
	return b, nil
}

// Otr4GoPublish runs the Go client side of the prekey-server DAKE as `from` against a server
// `serverIdentity` reached through `ex`, publishing a fresh Client Profile, Prekey Profile and
// n Prekey messages. It returns a step-by-step log and the first error.
func Otr4GoPublish(ex Otr4Exchange, from, serverIdentity string, n int) (log []string, err error) {
	wr := gotrx.DefaultRandom()
	longTerm := gotrx.GenerateKeypair(wr)
	forging := gotrx.GenerateKeypair(wr)
	tag := gotrx.RandomUint32(wr) | 0x100
	cp := &gotrx.ClientProfile{
		InstanceTag: tag,
		PublicKey:   longTerm.Pub,
		ForgingKey:  gotrx.CreatePublicKey(forging.Pub.K(), gotrx.ForgingKey),
		Versions:    []byte{'4'},
		Expiration:  time.Now().Add(14 * 24 * time.Hour),
	}
	cp.Sig = gotrx.CreateEddsaSignature(cp.GenerateSignature(longTerm))
	i := gotrx.GenerateKeypair(wr)

	d1 := generateDake1(tag, cp, i.Pub.K())
	replies, err := ex(encodeMessage(d1.serialize()) + ".")
	if err != nil {
		return append(log, "DAKE-1 sent: transport error"), err
	}
	raw, err := otr4Decode(replies)
	if err != nil {
		return append(log, "DAKE-1 sent: no usable DAKE-2"), err
	}
	d2 := &dake2Message{}
	if _, ok := d2.deserialize(raw); !ok {
		return append(log, fmt.Sprintf("DAKE-2 received (%d bytes): Go cannot deserialize it", len(raw))), errors.New("bad DAKE-2")
	}
	log = append(log, "DAKE-2 received and deserialized")
	serverPub := gotrx.CreatePublicKey(d2.serverKey, gotrx.Ed448Key)
	composite := append(gotrx.AppendData(nil, d2.serverIdentity), serverPub.Serialize()...)
	phi := gotrx.AppendData(gotrx.AppendData(nil, []byte(from)), []byte(serverIdentity))
	t := []byte{0x00}
	t = append(t, gotrx.KdfPrekeyServer(usageInitiatorClientProfile, 64, cp.Serialize())...)
	t = append(t, gotrx.KdfPrekeyServer(usageInitiatorPrekeyCompositeIdentity, 64, composite)...)
	t = append(t, gotrx.SerializePoint(i.Pub.K())...)
	t = append(t, gotrx.SerializePoint(d2.s)...)
	t = append(t, gotrx.KdfPrekeyServer(usageInitiatorPrekeyCompositePHI, 64, phi)...)
	if !d2.sigma.Verify(longTerm.Pub, serverPub, i.Pub, t, gotrx.KdfPrekeyServer, usageAuth) {
		return append(log, "DAKE-2 ring signature: INVALID"), errors.New("bad DAKE-2 signature")
	}
	log = append(log, "DAKE-2 ring signature verified")

	sk := gotrx.KdfPrekeyServer(usageSK, skLength, gotrx.SerializePoint(ed448.PointScalarMul(d2.s, i.Priv.K())))
	macKey := gotrx.KdfPrekeyServer(usagePreMACKey, 64, sk)
	pp, ppKey := generatePrekeyProfile(wr, tag, time.Now().Add(7*24*time.Hour), longTerm)
	var pms []*prekeyMessage
	var ys []*gotrx.Keypair
	var bs, bpubs []*big.Int
	for k := 0; k < n; k++ {
		pm, y, b, bpub := generatePrekeyMessage(wr, tag)
		pms, ys, bs, bpubs = append(pms, pm), append(ys, y), append(bs, b), append(bpubs, bpub)
	}
	p1, p2 := generatePrekeyMessagesProofs(wr, ys, bs, bpubs, sk)
	p3 := gemeratePrekeyProfileProof(wr, ppKey, sk)
	pub := generatePublicationMessage(cp, pp, pms, p1, p2, p3, macKey)

	t3 := []byte{0x01}
	t3 = append(t3, gotrx.KdfPrekeyServer(usageReceiverClientProfile, 64, cp.Serialize())...)
	t3 = append(t3, gotrx.KdfPrekeyServer(usageReceiverPrekeyCompositeIdentity, 64, composite)...)
	t3 = append(t3, gotrx.SerializePoint(i.Pub.K())...)
	t3 = append(t3, gotrx.SerializePoint(d2.s)...)
	t3 = append(t3, gotrx.KdfPrekeyServer(usageReceiverPrekeyCompositePHI, 64, phi)...)
	sPub := gotrx.CreatePublicKey(d2.s, gotrx.Ed448Key)
	sigma, err := gotrx.GenerateSignature(wr, longTerm.Priv, longTerm.Pub, longTerm.Pub, serverPub, sPub, t3, gotrx.KdfPrekeyServer, usageAuth)
	if err != nil {
		return append(log, "DAKE-3 signing failed"), err
	}
	d3 := generateDake3(tag, sigma, pub.serialize())
	replies, err = ex(encodeMessage(d3.serialize()) + ".")
	if err != nil {
		return append(log, "DAKE-3 (publication) sent: transport error"), err
	}
	raw, err = otr4Decode(replies)
	if err != nil {
		return append(log, "DAKE-3 (publication) sent: no usable reply"), err
	}
	ok := &successMessage{}
	if _, good := ok.deserialize(raw); !good {
		return append(log, fmt.Sprintf("reply to publication is not a Success (type 0x%02x)", raw[2])), errors.New("no success")
	}
	want := generateSuccessMessage(macKey, tag)
	if want.mac != ok.mac {
		return append(log, "Success received, MAC INVALID"), errors.New("bad success MAC")
	}
	return append(log, fmt.Sprintf("Success received, MAC verified (%d prekey messages published)", n)), nil
}

// Otr4GoRetrieve sends a Go-made Prekey Ensemble Query for `identity` and reports whether
// the Go code can deserialize the answer.
func Otr4GoRetrieve(ex Otr4Exchange, identity string) (string, error) {
	q := &ensembleRetrievalQueryMessage{instanceTag: 0x1234, identity: identity, versions: []byte{'4'}}
	replies, err := ex(encodeMessage(q.serialize()) + ".")
	if err != nil {
		return "query sent: transport error", err
	}
	raw, err := otr4Decode(replies)
	if err != nil {
		return "query sent: no usable reply", err
	}
	if len(raw) > 2 && raw[2] == messageTypeNoPrekeyEnsembles {
		m := &noPrekeyEnsemblesMessage{}
		if _, ok := m.deserialize(raw); !ok {
			return "No Prekey Ensembles: Go cannot deserialize it", errors.New("bad reply")
		}
		return "No Prekey Ensembles: " + m.message, nil
	}
	m := &ensembleRetrievalMessage{}
	if _, ok := m.deserialize(raw); !ok {
		return fmt.Sprintf("Ensemble Retrieval (%d bytes): Go cannot deserialize it", len(raw)), errors.New("bad reply")
	}
	return fmt.Sprintf("Ensemble Retrieval: %d ensembles deserialized", len(m.ensembles)), nil
}
