"""A small Flask site: a login form, a cookie session, a notes page, file upload and download. Served by gunicorn
inside a web function; its HTTP trigger gives it its own host name, so its root-relative URLs work unchanged."""

import hashlib
import os

from flask import Flask, Response, abort, redirect, render_template, request, session, url_for

app = Flask(__name__)
# The session cookie is signed with this key; set SECRET_KEY in the function's environment_variables.
app.secret_key = os.environ.get("SECRET_KEY", "change-me")
NOTES: list[str] = []
FILES: dict[str, bytes] = {}


@app.get("/")
def index():
    return render_template("index.html", user=session.get("user"), notes=NOTES)


@app.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        if not name:
            return render_template("login.html", error="a name is required"), 400
        session["user"] = name
        return redirect(url_for("index"))
    return render_template("login.html", error=None)


@app.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("index"))


@app.post("/notes")
def add_note():
    if "user" not in session:
        return redirect(url_for("login"))
    NOTES.append(f"{session['user']}: {request.form.get('text', '')}")
    return redirect(url_for("index"))


@app.put("/files/<name>")
def put_file(name):
    FILES[name] = request.get_data()
    return {"name": name, "size": len(FILES[name]), "sha256": hashlib.sha256(FILES[name]).hexdigest()}


@app.get("/files/<name>")
def get_file(name):
    if name not in FILES:
        abort(404)
    return Response(FILES[name], mimetype="application/octet-stream")


@app.get("/prefs")
def prefs():
    response = Response("preferences set\n", mimetype="text/plain")
    response.set_cookie("theme", "dark")
    response.set_cookie("lang", "en")
    return response
