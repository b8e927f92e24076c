# Tiercel broker image. Build: docker build -t tiercel .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tiercel ./cmd/tiercel

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tiercel /usr/local/bin/tiercel
VOLUME /var/lib/tiercel
EXPOSE 9092 9644
ENTRYPOINT ["/usr/local/bin/tiercel"]
CMD ["serve", "--data-dir", "/var/lib/tiercel", "--kafka-addr", "0.0.0.0:9092", "--http-addr", "0.0.0.0:9644"]
