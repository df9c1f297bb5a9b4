package webhooks_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/heraldhq/herald/webhooks"
)

// A receiver verifies each request against the channel's secret before it
// trusts the body. The sender side is what Herald does for every delivery.
func Example() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from the channel's settings

	// Receiver: create the Verifier once, at start-up.
	verifier, err := webhooks.NewVerifier(secret)
	if err != nil {
		log.Fatal(err)
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Verify the raw bytes, before decoding the JSON.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := verifier.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		// Deduplicate on r.Header.Get(webhooks.HeaderID), then handle body.
		fmt.Printf("received %s: %s\n", r.Header.Get(webhooks.HeaderID), body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// Sender: sign the exact bytes that are sent.
	signer, err := webhooks.NewSigner(secret)
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","type":"order.paid","data":{"total_amount":5000}}`)
	send := func(body []byte) {
		req, err := http.NewRequest(http.MethodPost, receiver.URL, bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		signer.SetHeaders(req.Header, "evt_1", time.Now(), body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	send(body)

	// A request signed with another secret is refused.
	other, err := webhooks.NewSecret()
	if err != nil {
		log.Fatal(err)
	}
	signer, err = webhooks.NewSigner(other)
	if err != nil {
		log.Fatal(err)
	}
	send(body)

	// Output:
	// received evt_1: {"id":"evt_1","type":"order.paid","data":{"total_amount":5000}}
	// 204 No Content
	// 401 Unauthorized
}

// The Standard Webhooks test vector.
func ExampleSigner_Sign() {
	signer, err := webhooks.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// While a secret is rotated, Herald signs with both; a receiver that knows
// either one accepts the request.
func ExampleNewSigner_rotation() {
	oldSecret, newSecret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_+VDrGP7BQjF0VsFoP4okWywQawDzHoMRGY45yNfHKzw="
	signer, err := webhooks.NewSigner(oldSecret, newSecret)
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	signer.SetHeaders(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Now(), body)

	for _, secret := range []string{oldSecret, newSecret} {
		v, err := webhooks.NewVerifier(secret)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(v.Verify(body, h))
	}
	// Output:
	// <nil>
	// <nil>
}
