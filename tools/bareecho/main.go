// Command bareecho is the baseline for scripts/bench.sh: a bare Echo server
// with the same route shapes as hookbay's Bubblehouse and Bloomreach
// receivers, whose handlers only read the body and answer 200 {"ok":true}
// (Bubblehouse) or {"success":true} (Bloomreach, per-customer and batch
// alike: no per-item reply is built). hookbay's throughput is reported as a
// ratio of this server's, measured in the same run.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"

	"github.com/labstack/echo/v4"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "listen address")
	flag.Parse()

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.POST("/bubblehouse/:name", reply(`{"ok":true}`))
	e.POST("/bloomreach/:name", reply(`{"success":true}`))
	if err := e.Start(*listen); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// reply is the trivial handler: read the body, answer 200 with body.
func reply(body string) echo.HandlerFunc {
	b := []byte(body)
	return func(c echo.Context) error {
		if _, err := io.ReadAll(c.Request().Body); err != nil {
			return err
		}
		return c.JSONBlob(http.StatusOK, b)
	}
}
