package web

import "net/http"

func (s *Server) routesCatalog(mux *http.ServeMux) {}
