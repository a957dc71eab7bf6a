{
  "targets": [
    {
      "target_name": "zcnic_sys",
      "sources": ["native/sys.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
